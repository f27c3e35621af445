package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// PersonErasure names what an erasure erased: either the person and the invitations whose invitee
// the person is, or (Address only) the stream of the failed logins to the person's address, which
// an erasure erases first, while it still knows the address.
type PersonErasure struct {
	User        domain.UserID
	Invitations []domain.InvitationID
	Address     string
}

// subjects are the subjects whose keys the erasure deleted.
func (e PersonErasure) subjects() []string {
	var out []string
	if e.User != "" {
		out = append(out, e.User.Stream())
	}
	for _, id := range e.Invitations {
		out = append(out, domain.InvitationSubject(id))
	}
	if e.Address != "" {
		out = append(out, e.Address)
	}
	return out
}

// Eraser is a Projector whose read model shows personal data. Erase rewrites in place, inside
// tx, the rows of t that hold the personal data of e's subjects, to what a rebuild from the log
// writes once their keys are gone (domain.ErasedValue), finding them through its keys and
// indexes: its cost is the person's rows, not the log's. read returns the events at positions,
// opened as the store opens them (placeholders for the erased subjects).
type Eraser interface {
	Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, read func(ctx context.Context, positions []int64) ([]eventstore.Envelope, error)) error
}

// ErasePerson rewrites the rows of user in every read model that shows personal data
// (each Eraser), after the keys of user and of invitations are gone, and returns the names of
// those read models (commands.ErasedReadModels).
// It first waits until they applied the log up to its head: a batch read while the keys still
// opened (the erasure's own event included) is committed before the rewrite, which holds each
// model's checkpoint row, so no batch of this process commits a cleared value after it. A rebuild
// of one of them that is running answers domain.ErrConflict (retry); the rewrite holds the
// rebuild lock, so none starts meanwhile. Rewriting twice writes the same values.
func (r *Runtime) ErasePerson(ctx context.Context, user domain.UserID, invitations []domain.InvitationID) ([]string, error) {
	return r.erase(ctx, PersonErasure{User: user, Invitations: invitations})
}

// EraseAddress rewrites, as ErasePerson does, the rows of the failed logins to an address (its
// stream, domain.AddressStream) after the address's key is gone.
func (r *Runtime) EraseAddress(ctx context.Context, address string) error {
	_, err := r.erase(ctx, PersonErasure{Address: address})
	return err
}

func (r *Runtime) erase(ctx context.Context, e PersonErasure) ([]string, error) {
	var erasers []*state
	var names []string
	for _, st := range r.states {
		if _, ok := st.Projector.(Eraser); ok {
			erasers = append(erasers, st)
			names = append(names, st.Name())
		}
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.WaitFor(ctx, head, names...); err != nil {
		return nil, err
	}
	for _, st := range erasers {
		if err := r.eraseIn(ctx, st, e); err != nil {
			return nil, fmt.Errorf("projections: erase %v in %s: %w", e.subjects(), st.Name(), err)
		}
	}
	return names, nil
}

func (r *Runtime) eraseIn(ctx context.Context, st *state, e PersonErasure) error {
	unlock, err := r.lockRebuild(ctx, st.Name())
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var position int64
	if err := tx.QueryRowContext(ctx, `SELECT position FROM `+st.quotedCheckpoint()+` WHERE id = 1 FOR UPDATE`).Scan(&position); err != nil {
		return fmt.Errorf("lock checkpoint: %w", err)
	}
	if err := st.Projector.(Eraser).Erase(ctx, tx, st.live, e, r.store.ReadPositions); err != nil {
		return err
	}
	return tx.Commit()
}
