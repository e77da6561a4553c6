// deploy/azure/: the Bicep templates and their hand-written ARM JSON twins. No Bicep compiler
// exists here, so this test is what keeps the two in step: same parameters (and which are
// required), same resource types and API versions, same outputs, same DCR columns. It also ties
// the templates to the code: the DCR's streams are the ones stages/send sends to by default (each
// declared, as the Logs Ingestion API requires), its declared columns are engine/row/columns.h's
// for each table, and the cloud-init config passes `cefd check-config`.
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "engine/row/columns.h"
#include "engine/row/row.h"
#include "stages/send/send.h"
#include "tests/support/support.h"

namespace cefd {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// By value: `for (x : e.get_array().value())` would iterate a reference into a destroyed
// temporary (simdjson_result::value() && returns T&&).
array arr(const element e) { return e.get_array().value(); }
object obj(const element e) { return e.get_object().value(); }

std::string azure_file(const std::string& name) { return test::read_file(test::source_path("deploy/azure/" + name)); }

// What a Bicep file declares, read line by line (the templates keep one declaration per line).
struct BicepFile {
    std::map<std::string, bool> params;  // name -> required (no default)
    std::map<std::string, std::string> params_type;
    std::set<std::string> resources;  // "type@apiVersion"
    std::set<std::string> outputs;
    // { name: 'X', type: 'y' } lines, by the `var name = [` they are in.
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> columns;
    std::vector<std::string> bad_lines;  // quoting that would not compile
};

BicepFile read_bicep(const std::string& name) {
    BicepFile file;
    const std::regex param(R"(^param (\w+) (\w+)( = .+)?$)");
    const std::regex resource(R"(^resource \w+ '([^@']+)@([^']+)' = )");
    const std::regex output(R"(^output (\w+) \w+ = )");
    const std::regex column(R"(^  \{ name: '(\w+)', type: '(\w+)' \}$)");
    const std::regex array_var(R"(^var (\w+) = \[$)");
    std::string in_var;
    // A single-quoted Bicep string holds no bare quote: ' inside must be written \'.
    const std::regex description(R"(^@description\('((?:[^'\\]|\\.)*)'\)$)");
    for (const std::string& line : test::read_lines(test::source_path("deploy/azure/" + name))) {
        std::smatch m;
        if (std::regex_search(line, m, param)) {
            file.params[m[1]] = !m[3].matched;
            file.params_type[m[1]] = m[2];
        } else if (std::regex_search(line, m, resource)) {
            file.resources.insert(m[1].str() + "@" + m[2].str());
        } else if (std::regex_search(line, m, output)) {
            file.outputs.insert(m[1]);
        } else if (std::regex_search(line, m, array_var)) {
            in_var = m[1];
        } else if (line == "]") {
            in_var.clear();
        } else if (std::regex_search(line, m, column)) {
            file.columns[in_var].emplace_back(m[1], m[2]);
        } else if (line.rfind("@description(", 0) == 0 && !std::regex_match(line, description)) {
            file.bad_lines.push_back(line);
        }
    }
    return file;
}

class ArmTemplate {
public:
    explicit ArmTemplate(const std::string& name) : text_(azure_file(name)) {
        const auto error = parser_.parse(text_).get(root_);
        EXPECT_EQ(error, simdjson::SUCCESS) << name << " is not well-formed JSON: " << simdjson::error_message(error);
    }
    [[nodiscard]] object root() const { return obj(root_); }
    [[nodiscard]] std::vector<object> resources() const {
        std::vector<object> out;
        for (const element r : arr(root()["resources"])) out.push_back(obj(r));
        return out;
    }
    [[nodiscard]] object resource(std::string_view type) const {
        for (const object r : resources()) {
            if (std::string_view(r["type"].get_string().value()) == type) return r;
        }
        ADD_FAILURE() << "no resource of type " << type;
        return root();
    }

private:
    std::string text_;
    simdjson::dom::parser parser_;
    element root_;
};

std::string str(const element e) {
    std::string_view s;
    return e.get_string().get(s) == simdjson::SUCCESS ? std::string(s) : std::string("<not a string>");
}

// Both file formats must say the same thing.
void expect_same_interface(const std::string& base) {
    const BicepFile bicep = read_bicep(base + ".bicep");
    EXPECT_TRUE(bicep.bad_lines.empty()) << "unescaped quote in " << base << ".bicep: " << bicep.bad_lines.front();
    const ArmTemplate arm(base + ".json");
    const object root = arm.root();
    EXPECT_EQ(str(root["$schema"]), "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#");
    EXPECT_EQ(str(root["contentVersion"]), "1.0.0.0");

    std::map<std::string, bool> arm_params;
    for (const auto field : obj(root["parameters"])) {
        const object p = obj(field.value);
        arm_params[std::string(field.key)] = p["defaultValue"].error() == simdjson::NO_SUCH_FIELD;
        EXPECT_EQ(str(p["type"]), bicep.params_type.count(std::string(field.key))
                                      ? bicep.params_type.at(std::string(field.key))
                                      : "<not in bicep>")
            << base << " parameter " << field.key;
        EXPECT_NE(str(p["metadata"]["description"]), "<not a string>") << base << " parameter " << field.key;
    }
    EXPECT_EQ(arm_params, bicep.params) << base << ": parameters (and which are required) differ";

    std::set<std::string> arm_resources;
    for (const object r : arm.resources()) {
        arm_resources.insert(str(r["type"]) + "@" + str(r["apiVersion"]));
        EXPECT_NE(str(r["name"]), "<not a string>") << base << ": a resource without a name";
    }
    EXPECT_EQ(arm_resources, bicep.resources) << base << ": resources differ";

    std::set<std::string> arm_outputs;
    for (const auto field : obj(root["outputs"])) arm_outputs.insert(std::string(field.key));
    EXPECT_EQ(arm_outputs, bicep.outputs) << base << ": outputs differ";
}

TEST(AzureTemplates, CollectorBicepAndJsonAgree) { expect_same_interface("collector"); }
TEST(AzureTemplates, VmssBicepAndJsonAgree) { expect_same_interface("vmss"); }

TEST(AzureTemplates, DcrStreamsAreTheOnesCefdSendsTo) {
    const AzureTarget defaults;
    const ArmTemplate arm("collector.json");
    const object properties = obj(arm.resource("Microsoft.Insights/dataCollectionRules")["properties"]);
    // Every stream cefd posts to by default: the Logs Ingestion API takes data only on a stream
    // declared in streamDeclarations, and declared names start with Custom-.
    std::set<std::string> declared;
    for (const auto field : obj(properties["streamDeclarations"])) declared.insert(std::string(field.key));
    const std::string bicep = azure_file("collector.bicep");
    for (const std::string& stream : {defaults.stream, defaults.syslog_stream}) {
        EXPECT_EQ(stream.rfind("Custom-", 0), 0u) << stream << ": the Logs Ingestion API accepts only Custom- streams";
        EXPECT_TRUE(declared.count(stream)) << stream << " is not declared in collector.json";
        EXPECT_NE(bicep.find("    '" + stream + "': {"), std::string::npos)
            << stream << " is not declared in collector.bicep";
    }
    for (const std::string& stream : declared) EXPECT_EQ(stream.rfind("Custom-", 0), 0u) << stream;
    std::set<std::string> destinations;
    for (const element d : arr(properties["destinations"]["logAnalytics"])) destinations.insert(str(d["name"]));
    std::map<std::string, std::string> flows;  // input stream -> output stream
    for (const element flow : arr(properties["dataFlows"])) {
        for (const element s : arr(flow["streams"])) flows[str(s)] = str(flow["outputStream"]);
        for (const element d : arr(flow["destinations"]))
            EXPECT_TRUE(destinations.count(str(d))) << "data flow to undeclared destination " << str(d);
        EXPECT_EQ(str(flow["transformKql"]), "source");
    }
    EXPECT_EQ(flows[defaults.stream], "Microsoft-CommonSecurityLog");
    EXPECT_EQ(flows[defaults.syslog_stream], "Microsoft-Syslog");
    EXPECT_EQ(flows.size(), declared.size()) << "a data flow from a stream that is not declared";
    EXPECT_NE(str(properties["dataCollectionEndpointId"]).find("Microsoft.Insights/dataCollectionEndpoints"),
              std::string::npos);

    for (const std::string& stream : {defaults.stream, defaults.syslog_stream}) {
        EXPECT_NE(bicep.find("streams: [ '" + stream + "' ]"), std::string::npos)
            << stream << " not in collector.bicep";
    }
    EXPECT_NE(bicep.find("outputStream: 'Microsoft-CommonSecurityLog'"), std::string::npos);
    EXPECT_NE(bicep.find("outputStream: 'Microsoft-Syslog'"), std::string::npos);
}

const char* type_name(ColumnType type) {
    return type == ColumnType::string  ? "string"
           : type == ColumnType::int_  ? "int"
           : type == ColumnType::long_ ? "long"
           : type == ColumnType::real  ? "real"
                                       : "datetime";
}

TEST(AzureTemplates, DcrDeclaresEveryColumnCefdSends) {
    // Every CommonSecurityLog column but those the service fills; undeclared ones would be
    // dropped by Azure without an error.
    std::vector<std::pair<std::string, std::string>> expected;
    for (std::size_t i = 0; i < common_security_log_column_count; ++i) {
        const ColumnInfo& c = columns[i];
        if (c.name.front() == '_' || c.name == "TenantId" || c.name == "Type") continue;
        expected.emplace_back(std::string(c.name), type_name(c.type));
    }
    const ArmTemplate arm("collector.json");
    std::vector<std::pair<std::string, std::string>> in_json;
    for (const element c : arr(arm.root()["variables"]["commonSecurityLogColumns"]))
        in_json.emplace_back(str(c["name"]), str(c["type"]));
    EXPECT_EQ(in_json, expected) << "collector.json columns differ from engine/row/columns.h";
    EXPECT_EQ(read_bicep("collector.bicep").columns["commonSecurityLogColumns"], expected)
        << "collector.bicep columns differ";
    EXPECT_EQ(str(arm.resource("Microsoft.Insights/dataCollectionRules")["properties"]["streamDeclarations"]
                                                                        [AzureTarget{}.stream]["columns"]),
              "[variables('commonSecurityLogColumns')]");
    EXPECT_NE(azure_file("collector.bicep")
                  .find("    'Custom-CommonSecurityLog': {\n        columns: commonSecurityLogColumns\n"),
              std::string::npos);
}

TEST(AzureTemplates, DcrDeclaresEverySyslogColumnCefdSends) {
    // The columns the encoder may write for a Syslog row (in_table), as the Syslog table types
    // them. Sorted: the templates list them alphabetically, as the table reference does.
    std::vector<std::pair<std::string, std::string>> expected;
    for (std::size_t i = 0; i < column_count; ++i) {
        const ColumnInfo& c = columns[i];
        if (in_table(static_cast<Column>(i), Table::syslog))
            expected.emplace_back(std::string(c.name), type_name(c.type));
    }
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(expected.size(), syslog_column_count);
    const ArmTemplate arm("collector.json");
    std::vector<std::pair<std::string, std::string>> in_json;
    for (const element c : arr(arm.root()["variables"]["syslogColumns"]))
        in_json.emplace_back(str(c["name"]), str(c["type"]));
    EXPECT_EQ(in_json, expected) << "collector.json syslogColumns differ from engine/row/columns.h";
    EXPECT_EQ(read_bicep("collector.bicep").columns["syslogColumns"], expected)
        << "collector.bicep syslogColumns differ";
    EXPECT_EQ(str(arm.resource("Microsoft.Insights/dataCollectionRules")["properties"]["streamDeclarations"]
                                                                        [AzureTarget{}.syslog_stream]["columns"]),
              "[variables('syslogColumns')]");
    EXPECT_NE(azure_file("collector.bicep")
                  .find("    '" + AzureTarget{}.syslog_stream + "': {\n        columns: syslogColumns\n"),
              std::string::npos);
}

TEST(AzureTemplates, CollectorIdentityIsMonitoringMetricsPublisherOnTheDcr) {
    const std::string role = "3913510d-42f4-4e42-8a64-420c390055eb";
    const ArmTemplate arm("collector.json");
    EXPECT_EQ(str(arm.root()["variables"]["monitoringMetricsPublisher"]), role);
    int assignments = 0;
    for (const object r : arm.resources()) {
        if (str(r["type"]) != "Microsoft.Authorization/roleAssignments") continue;
        ++assignments;
        EXPECT_NE(str(r["scope"]).find("Microsoft.Insights/dataCollectionRules/"), std::string::npos);
        EXPECT_NE(str(r["properties"]["roleDefinitionId"]).find("variables('monitoringMetricsPublisher')"),
                  std::string::npos);
        EXPECT_EQ(str(r["properties"]["principalType"]), "ServicePrincipal");
    }
    EXPECT_EQ(assignments, 2) << "the collectors' identity, and the optional extra principal";
    EXPECT_NE(str(arm.resource("Microsoft.Authorization/roleAssignments")["properties"]["principalId"])
                  .find("Microsoft.ManagedIdentity/userAssignedIdentities"),
              std::string::npos);
    const std::string bicep = azure_file("collector.bicep");
    EXPECT_NE(bicep.find("var monitoringMetricsPublisher = '" + role + "'"), std::string::npos);
    EXPECT_NE(bicep.find("principalId: identity.properties.principalId"), std::string::npos);
}

TEST(AzureTemplates, LoadBalancerCarriesSyslogOnUdpAndTcp514WithSourceIpAffinity) {
    const ArmTemplate arm("vmss.json");
    const object lb = obj(arm.resource("Microsoft.Network/loadBalancers")["properties"]);
    EXPECT_EQ(str(arm.resource("Microsoft.Network/loadBalancers")["sku"]["name"]), "Standard");
    EXPECT_EQ(lb["frontendIPConfigurations"].at(0)["properties"]["publicIPAddress"].error(), simdjson::NO_SUCH_FIELD)
        << "the load balancer must be internal";
    std::set<std::string> protocols;
    for (const element rule : arr(lb["loadBalancingRules"])) {
        const object p = obj(rule["properties"]);
        protocols.insert(str(p["protocol"]));
        EXPECT_EQ(p["frontendPort"].get_int64().value(), 514);
        EXPECT_EQ(p["backendPort"].get_int64().value(), 514);
        EXPECT_EQ(str(p["loadDistribution"]), "SourceIP");
        EXPECT_NE(str(p["probe"]["id"]).find("syslog-tcp"), std::string::npos);
    }
    EXPECT_EQ(protocols, (std::set<std::string>{"Tcp", "Udp"}));
    const object vmss = arm.resource("Microsoft.Compute/virtualMachineScaleSets");
    EXPECT_EQ(str(vmss["identity"]["type"]), "UserAssigned");
    EXPECT_EQ(str(vmss["properties"]["virtualMachineProfile"]["osProfile"]["customData"]),
              "[base64(variables('cloudInit'))]");
    const std::string bicep = azure_file("vmss.bicep");
    EXPECT_NE(bicep.find("loadDistribution: 'SourceIP'"), std::string::npos);
    EXPECT_NE(bicep.find("customData: base64(cloudInit)"), std::string::npos);
}

TEST(AzureTemplates, VmssEmbedsCloudInitAndItsConfigPassesCheckConfig) {
    const std::string cloud_init = azure_file("cloud-init.yaml");
    ASSERT_EQ(cloud_init.rfind("#cloud-config\n", 0), 0u);
    // vmss.json carries cloud-init.yaml as an ARM string literal: ' doubled.
    std::string literal = "'";
    for (const char c : cloud_init) literal += c == '\'' ? std::string("''") : std::string(1, c);
    literal += "'";
    const ArmTemplate arm("vmss.json");
    const std::string variable = str(arm.root()["variables"]["cloudInit"]);
    EXPECT_NE(variable.find(literal), std::string::npos) << "vmss.json's cloud-init text differs from cloud-init.yaml";
    const std::string bicep = azure_file("vmss.bicep");
    EXPECT_NE(bicep.find("loadTextContent('cloud-init.yaml')"), std::string::npos);
    const std::map<std::string, std::string> placeholders = {{"@ENDPOINT@", "logsIngestionEndpoint"},
                                                             {"@DCR_ID@", "dcrImmutableId"},
                                                             {"@CLIENT_ID@", "identityClientId"},
                                                             {"@PACKAGE_URL@", "packageUrl"}};
    for (const auto& [placeholder, param] : placeholders) {
        EXPECT_NE(cloud_init.find(placeholder), std::string::npos) << placeholder;
        EXPECT_NE(variable.find("'" + placeholder + "', parameters('" + param + "')"), std::string::npos)
            << placeholder;
        EXPECT_NE(bicep.find("'" + placeholder + "', " + param + ")"), std::string::npos) << placeholder;
    }
    const std::regex placeholder_pattern("@[A-Z_]+@");
    for (auto it = std::sregex_iterator(cloud_init.begin(), cloud_init.end(), placeholder_pattern);
         it != std::sregex_iterator(); ++it) {
        EXPECT_TRUE(placeholders.count(it->str())) << it->str() << " in cloud-init.yaml is not filled by the templates";
    }

    // The config cloud-init writes, with the values an operator would get, is valid for cefd.
    std::string config;
    bool in_content = false;
    for (const std::string& line : test::read_lines(test::source_path("deploy/azure/cloud-init.yaml"))) {
        if (line.find("content: |") != std::string::npos) {
            in_content = true;
        } else if (in_content && (line.empty() || line.rfind("      ", 0) == 0)) {
            config += (line.empty() ? line : line.substr(6)) + "\n";
        } else if (in_content) {
            in_content = false;
        }
    }
    config = std::regex_replace(config, std::regex("@ENDPOINT@"),
                                "https://cefd-dce-abcd.westeurope-1.ingest.monitor.azure.com");
    config = std::regex_replace(config, std::regex("@DCR_ID@"), "dcr-0123456789abcdef0123456789abcdef");
    config = std::regex_replace(config, std::regex("@CLIENT_ID@"), "00000000-0000-0000-0000-000000000000");
    EXPECT_NE(config.find("stream = \"" + AzureTarget{}.stream + "\""), std::string::npos) << config;
    test::TempDir dir;
    test::write_file(dir.file("cefd.toml"), config, 0600);
    std::string output;
    EXPECT_EQ(test::run_command("'" + test::binary_path("engine/pipeline/cefd") + "' check-config --config '" +
                                    dir.file("cefd.toml") + "' 2>&1",
                                &output),
              0)
        << output << "\n"
        << config;
}

}  // namespace
}  // namespace cefd
