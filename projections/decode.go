package projections

import (
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// decodeEvent decodes env as reg does; an executed query in the plain form the store writes is
// read by decodeQuery, without reflection: most of what the query history and the databases'
// last use read at thousands of queries a second.
func decodeEvent(reg *eventstore.Registry, env eventstore.Envelope) (domain.Event, error) {
	if env.EventType == queryExecutedType {
		if q, ok := decodeQuery(env.Payload, nil, false); ok {
			return q, nil
		}
	}
	return reg.Decode(env)
}
