// cefd-standin-bench: measures how many 1 MiB (uncompressed) gzip batches per second a running
// stand-in accepts. Not a test; the figures go into README.md.
//
//   cefd-standin-bench --url http://127.0.0.1:PORT [--threads 2] [--seconds 5] [--batch-bytes 1048576]
//                      [--cacert standin-ca.pem]
//
// Each thread keeps one libcurl connection open and posts the same pre-built batch (rows shaped
// like cefd's CommonSecurityLog rows) as fast as the stand-in answers. Prints one JSON line.
#include <curl/curl.h>
#include <libdeflate.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

std::size_t discard(char*, std::size_t size, std::size_t count, void*) { return size * count; }
std::size_t keep(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

std::string make_batch(std::size_t bytes_max, std::size_t& rows) {
    std::string json = "[";
    rows = 0;
    // Bounded by bytes_max: every row adds several hundred bytes.
    while (true) {
        const std::string row =
            R"({"TimeGenerated":"2026-11-29T08:28:21.123456Z","Computer":"dt-master-01","CollectorHostName":"collector-1",)"
            R"("DeviceVendor":"Darktrace","DeviceProduct":"Enterprise Immune System","DeviceVersion":"6.1",)"
            R"("DeviceEventClassID":"Model Breach","Activity":"Anomalous Connection / Data Sent to Rare Domain",)"
            R"("LogSeverity":"8","SourceIP":"10.1.2.)" + std::to_string(rows % 250) +
            R"(","DestinationIP":"203.0.113.7","DestinationPort":443,"SourceHostName":"ws-)" + std::to_string(rows) +
            R"(.corp.example","RequestURL":"https://darktrace.example/#modelbreach/)" + std::to_string(100000 + rows) +
            R"(","AdditionalExtensions":"message=Data sent to rare domain;groupingId=abc123;cefdseq=bench-)" +
            std::to_string(rows) + R"("})";
        if (json.size() + row.size() + 2 > bytes_max) break;
        json += (rows == 0 ? "" : ",") + row;
        ++rows;
    }
    return json + "]";
}

}  // namespace

int main(int argc, char** argv) {
    std::string url;
    int threads = 2;
    double seconds = 5;
    std::size_t batch_bytes = 1'048'576;
    std::string ca_file;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--url") url = argv[i + 1];
        else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
        else if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (flag == "--batch-bytes") batch_bytes = static_cast<std::size_t>(std::atoll(argv[i + 1]));
        else if (flag == "--cacert") ca_file = argv[i + 1];
    }
    if (url.empty() || threads < 1) {
        std::fprintf(stderr, "usage: cefd-standin-bench --url BASE [--threads N] [--seconds S] [--batch-bytes B]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    std::size_t rows = 0;
    const std::string json = make_batch(batch_bytes, rows);
    libdeflate_compressor* compressor = libdeflate_alloc_compressor(6);
    std::string body(libdeflate_gzip_compress_bound(compressor, json.size()), '\0');
    body.resize(libdeflate_gzip_compress(compressor, json.data(), json.size(), body.data(), body.size()));
    libdeflate_free_compressor(compressor);

    // One token for every thread.
    std::string token_response;
    {
        CURL* curl = curl_easy_init();
        const std::string form = "grant_type=client_credentials&client_id=cefd-test-client&client_secret=cefd-test-secret"
                                 "&scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default";
        curl_easy_setopt(curl, CURLOPT_URL, (url + "/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token").c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form.c_str());
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &token_response);
        if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
        curl_easy_perform(curl);
        curl_easy_cleanup(curl);
    }
    const std::size_t at = token_response.find("\"access_token\":\"");
    if (at == std::string::npos) {
        std::fprintf(stderr, "no token: %s\n", token_response.c_str());
        return 1;
    }
    const std::string token = token_response.substr(at + 16, token_response.find('"', at + 16) - at - 16);

    std::atomic<std::uint64_t> accepted{0}, failed{0};
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(seconds);
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&] {
                CURL* curl = curl_easy_init();
                curl_slist* headers = nullptr;
                headers = curl_slist_append(headers, "Content-Type: application/json");
                headers = curl_slist_append(headers, "Content-Encoding: gzip");
                headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
                headers = curl_slist_append(headers, "Expect:");
                const std::string target = url + "/dataCollectionRules/dcr-00000000000000000000000000000000/streams/"
                                                 "Custom-CommonSecurityLog?api-version=2023-01-01";
                curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
                curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
                curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
                if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
                while (std::chrono::steady_clock::now() < deadline) {
                    long status = 0;
                    if (curl_easy_perform(curl) == CURLE_OK &&
                        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 204) {
                        accepted.fetch_add(1);
                    } else {
                        failed.fetch_add(1);
                    }
                }
                curl_slist_free_all(headers);
                curl_easy_cleanup(curl);
            });
        }
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("{\"threads\":%d,\"batch_json_bytes\":%zu,\"batch_wire_bytes\":%zu,\"rows_per_batch\":%zu,"
                "\"accepted\":%llu,\"failed\":%llu,\"elapsed_s\":%.2f,\"requests_per_s\":%.1f,\"rows_per_s\":%.0f,"
                "\"json_mb_per_s\":%.1f}\n",
                threads, json.size(), body.size(), rows, static_cast<unsigned long long>(accepted.load()),
                static_cast<unsigned long long>(failed.load()), elapsed, static_cast<double>(accepted.load()) / elapsed,
                static_cast<double>(accepted.load() * rows) / elapsed,
                static_cast<double>(accepted.load() * json.size()) / elapsed / 1e6);
    curl_global_cleanup();
    return failed.load() == 0 ? 0 : 1;
}
