/* SPDX-License-Identifier: Apache-2.0 */
/* The maps, pinned by name under the agent's pin root: every object that includes this shares them. */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../weft.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_MAX_ENDPOINTS);
	__type(key, struct weft_addr);
	__type(value, struct weft_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEFT_MAX_NODE_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_lpm_key);
	__type(value, struct weft_node);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_counters SEC(".maps");

static __always_inline const struct weft_config *weft_get_config(void)
{
	__u32 zero = 0;
	const struct weft_config *config = bpf_map_lookup_elem(&weft_config, &zero);

	return config && (config->flags & WEFT_CONFIG_READY) ? config : 0;
}

static __always_inline void weft_count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&weft_counters, &counter);

	if (value)
		*value += 1;
}

/* Every verdict ends in a counter: counts it, and returns the action. */
static __always_inline int weft_verdict(__u32 counter, int action)
{
	weft_count(counter);
	return action;
}

#endif
