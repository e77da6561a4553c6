// tools/loadgen/templates.h: realistic Darktrace traffic for cefd-loadgen (--payload templates).
//
// A pool of events is generated once, before sending, from three templates, with hosts, IPs,
// scores, ids and URLs drawn from a seeded generator (splitmix64), so a seed always gives the
// same bytes. The senders then cycle the pool exactly like the lines of --file: sending stays a
// memcpy per event. The mix, by count (chosen to resemble a Darktrace feed, not measured):
//
//   template                 share   bytes (stamp not included)
//   model breach              75%    ~850-1,050 (like darktrace-cef-853b.txt, average 853)
//   system status             17%    ~260-330 (probe errors, health, bandwidth)
//   AI Analyst incident        8%    ~1,400-6,500 (multi-paragraph incident summaries)
//
// which averages about 1 KB per event. The pool's size and mix are in the loadgen README.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cefd::loadgen {

/// `count` events from the template mix, reproducible from `seed`.
std::vector<std::string> make_template_events(std::uint64_t seed, std::size_t count);

}  // namespace cefd::loadgen
