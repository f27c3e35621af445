package commands

import (
	"context"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// loadSamplesPerAppend bounds the streams of one append of load samples.
const loadSamplesPerAppend = 100

// RecordLoad returns what the query module's load sampler (queryexec.LoadSampler) records its
// samples with: each in its tenant's load stream (domain.LoadStream), appended without a version
// check and without waiting for a commit of its own (Unhurried), so that neither the tenant's
// decisions nor the API's appends wait on a sample.
func RecordLoad(events EventStore) func(context.Context, []domain.TenantLoadSampled) error {
	return func(ctx context.Context, samples []domain.TenantLoadSampled) error {
		for from := 0; from < len(samples); from += loadSamplesPerAppend {
			chunk := samples[from:min(from+loadSamplesPerAppend, len(samples))]
			streams := make([]eventstore.Stream, len(chunk))
			for i, s := range chunk {
				streams[i] = eventstore.Stream{ID: domain.LoadStream(s.TenantID), Type: "load", ExpectedVersion: eventstore.AnyVersion,
					Events: []domain.Event{s}}
			}
			if _, err := events.Append(ctx, eventstore.Append{Streams: streams, Unhurried: true}); err != nil {
				return err
			}
		}
		return nil
	}
}
