// engine/pipeline/check_steps.h: the steps of `cefd check` (check.h), shared by the files that
// implement them. Internal to engine/pipeline; nothing outside `cefd check` includes it.
//
//   check.cpp        the order of the steps, and their text and JSON output
//   check_host.cpp   this machine: open files, listeners bindable, sysctls, io_uring, spool disk
//   check_probe.cpp  DNS, TCP, TLS and clock skew to an HTTPS URL (libcurl, like the sender)
//   check_azure.cpp  the token, and one direct request per DCR and stream
//   check_event.cpp  the test event through cefd's own listener (in-process or --running)
#pragma once

#include <curl/curl.h>

#include <string>
#include <vector>

#include "engine/pipeline/check.h"
#include "engine/pipeline/config.h"

namespace cefd::check_steps {

using StepStatus = CheckStep::Status;

// ---- check_host.cpp
CheckStep open_files_step(const Config& config);
void listener_steps(const Config& config, std::vector<CheckStep>& steps);
CheckStep sysctl_step(const Config& config);
CheckStep uring_step(const Config& config);
CheckStep spool_step(const Config& config);

// ---- check_probe.cpp
/// One HTTP request, and what libcurl saw of it.
struct Probe {
    CURLcode rc = CURLE_OK;
    long status = 0;
    std::string error;   // curl's error buffer
    std::string date;    // the Date header
    std::string body;    // capped
    std::string leaf;    // the leaf certificate's subject and issuer
    std::string address; // the IP connected to
    double dns_ms = 0;
    double connect_ms = 0;
    double tls_ms = 0;
};
/// `url` with the sender's TLS settings (azure.ca_file, azure.proxy, verification on).
Probe http_probe(const AzureConfig& azure, const std::string& url, const std::string& method,
                 const std::vector<std::string>& headers = {}, const std::string& body = {});
/// DNS, TCP and TLS to the host of `url`, as one step; the hint names the layer that failed.
CheckStep connectivity_step(const std::string& step, const AzureConfig& azure, const std::string& url);

// ---- check_azure.cpp
/// A token for `azure` (empty with auth = "none"); the step FAILs when none was obtained.
CheckStep token_step(const AzureConfig& azure, std::string& token);
/// One row straight to a DCR stream: proves the token, the DCR, the stream and the role.
CheckStep ingestion_step(const AzureConfig& azure, const AzureTarget& target, const std::string& token,
                         const std::string& marker);

// ---- check_event.cpp
/// A fresh marker (cefdcheck + 16 hex digits) for the direct row and the test event.
std::string make_marker();
/// The KQL that finds the rows carrying `marker`.
std::string kql(const std::string& marker);
/// The test event through a running instance: its /metrics, then its listener.
void running_steps(const Config& config, const CheckOptions& options, const std::string& marker,
                   std::vector<CheckStep>& steps);
/// The test event through an in-process Pipeline on the configured ports and spool.
CheckStep pipeline_step(const Config& config, const CheckOptions& options, const std::string& marker);

}  // namespace cefd::check_steps
