package domain

import "time"

// TenantLoadSampled is one process's sample of a tenant's load over a minute, recorded by the
// query module's sampler (queryexec.LoadSampler) only when it differs from the process's previous
// sample of the tenant: the peak of the tenant's statements running at once in the process during
// the minute, and its account pools' connections (open, and in use) when sampled. A process that
// stops records zeros for the tenants it last reported busy. Figures of different processes add
// up: the metrics read model keeps each process's latest sample per tenant and sums them.
type TenantLoadSampled struct {
	TenantID  TenantID  `json:"tenant_id"`
	ProcessID string    `json:"process_id"` // the instance id of the process's lease (internal/leases)
	Minute    time.Time `json:"minute"`     // the start of the minute sampled
	// PeakRunning is the most statements of the tenant that ran at once in the process during the
	// minute; PoolOpen and PoolInUse the connections of its account pools when sampled.
	PeakRunning int64     `json:"peak_running"`
	PoolOpen    int64     `json:"pool_open"`
	PoolInUse   int64     `json:"pool_in_use"`
	At          time.Time `json:"at"`
}

func (TenantLoadSampled) EventType() string { return "tenant.load_sampled.v1" }

// LoadStream is a tenant's stream of load samples: a stream of its own, appended without a
// version check, so that the decisions guarded on the tenant's stream never conflict with a
// sample.
func LoadStream(t TenantID) string { return "load-" + string(t) }
