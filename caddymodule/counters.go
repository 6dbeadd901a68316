package caddymodule

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// counterCache keeps the children of a CounterVec with one label, so
// that the request path finds a counter with one sync.Map load instead of
// WithLabelValues hashing its label and taking the vec's lock on every
// request (a measurable share of a cache hit). Labels come from small
// fixed sets (outcome, dialect), so the cache stays small; nothing ever
// deletes a child from these vecs, so a cached child stays the live one.
type counterCache struct {
	vec      *prometheus.CounterVec
	children sync.Map // label -> prometheus.Counter
}

func (c *counterCache) get(label string) prometheus.Counter {
	if v, ok := c.children.Load(label); ok {
		return v.(prometheus.Counter)
	}
	child := c.vec.WithLabelValues(label)
	c.children.Store(label, child)
	return child
}

var (
	requestCounters = &counterCache{vec: metrics.requests}
	hitCounters     = &counterCache{vec: metrics.cacheHits}
	missCounters    = &counterCache{vec: metrics.cacheMisses}
)
