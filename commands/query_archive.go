package commands

import (
	"context"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/resultarchive"
)

// The result archive keeps rows outside the log; what its owner did with them is recorded in the
// query's stream. The rows change first when they are kept (an event never claims a result that
// is not there) and last when they are deleted (no deletion goes unrecorded); an attempt that
// failed in between is completed by the next, which records only what the stream lacks.

// recordArchiving appends event to the query's stream unless the stream's last archive event
// already says the same (is).
func (h *QueryRunner) recordArchiving(ctx context.Context, queryID string, is domain.ArchiveRecord, event domain.Event, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		stream := domain.QueryStream(queryID)
		envs, err := h.events.ReadStream(ctx, stream, 0)
		if err != nil {
			return err
		}
		history := make([]domain.Event, len(envs))
		for i, env := range envs {
			if history[i], err = h.events.Registry().Decode(env); err != nil {
				return err
			}
		}
		if len(envs) == 0 || domain.ResultArchiveRecord(history) == is {
			return nil
		}
		_, err = h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{{
			ID: stream, Type: "query", ExpectedVersion: envs[len(envs)-1].StreamVersion, Events: []domain.Event{event},
		}}, Metadata: meta})
		return err
	})
}

// recordArchived records that the caller keeps item (query.result_archived.v1).
func (h *QueryRunner) recordArchived(ctx context.Context, tenant domain.TenantID, user domain.UserID, item resultarchive.Item, meta eventstore.Metadata) (resultarchive.Item, error) {
	meta.ActorID, meta.TenantID = string(user), string(tenant)
	event := domain.QueryResultArchived{QueryID: item.QueryID, DatabaseID: item.DatabaseID, RowCount: item.RowCount,
		Truncated: item.Truncated, Bytes: item.Bytes, At: item.ArchivedAt}
	if err := h.recordArchiving(ctx, item.QueryID, domain.ArchiveKept, event, meta); err != nil {
		return resultarchive.Item{}, fmt.Errorf("record the archive of %s: %w", item.QueryID, err)
	}
	return item, nil
}

// DeleteArchived is DELETE /queries/{id}/archive: the caller's archived result in tenant is
// deleted (query.result_archive_deleted.v1). Returns an error wrapping domain.ErrNotFound when
// the caller has none under queryID. The result store's copy, if any, lives on until its 15
// minutes end.
func (h *QueryRunner) DeleteArchived(ctx context.Context, tenant domain.TenantID, user domain.UserID, queryID string, meta eventstore.Metadata) error {
	if _, err := h.archive.Get(ctx, queryID, tenant, user); err != nil {
		return err
	}
	meta.ActorID, meta.TenantID = string(user), string(tenant)
	event := domain.QueryResultArchiveDeleted{QueryID: queryID, At: h.now().UTC()}
	if err := h.recordArchiving(ctx, queryID, domain.ArchiveDeleted, event, meta); err != nil {
		return fmt.Errorf("record the deletion of archive %s: %w", queryID, err)
	}
	return h.archive.Delete(ctx, queryID, tenant, user)
}
