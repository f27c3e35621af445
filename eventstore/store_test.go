package eventstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

func TestAppendAndRead(t *testing.T) {
	clock := &settableClock{}
	s, db := newStore(t, eventstore.Options{Clock: clock.Now})
	ctx := context.Background()

	if head, err := s.Head(ctx); err != nil || head != 0 {
		t.Fatalf("head of an empty log = %d, %v; want 0", head, err)
	}
	if envs, err := s.ReadAll(ctx, 0, 10); err != nil || len(envs) != 0 {
		t.Fatalf("ReadAll of an empty log = %v, %v", envs, err)
	}

	md := eventstore.Metadata{
		ActorID: "user-1", TenantID: "tenant-1", CorrelationID: "corr-1", CausationID: "cause-1",
		RequestID: "req-1", IP: "203.0.113.7", UserAgent: "curl/8.5 \"quoted\" ünïcode",
	}
	// Not UTC and with nanoseconds: the store must record UTC at microsecond precision.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	times := []time.Time{
		time.Date(2025, 3, 14, 15, 9, 26, 535897932, zone),
		time.Date(2025, 3, 14, 15, 9, 27, 1999, zone),
		time.Date(2025, 3, 14, 23, 59, 59, 999999999, zone),
	}
	a, b := "cart-"+uuid.NewString(), "cart-"+uuid.NewString()

	clock.Set(times[0])
	first := mustAppend(t, s, eventstore.Append{
		Streams:  []eventstore.Stream{{ID: a, Type: "cart", ExpectedVersion: 0, Events: []domain.Event{itemAdded{"apple", 1}, itemAdded{"pear", 2}}}},
		Metadata: md,
	})
	clock.Set(times[1])
	second := mustAppend(t, s, eventstore.Append{ // two streams in one append
		Streams: []eventstore.Stream{
			{ID: b, Type: "wishlist", ExpectedVersion: 0, Events: []domain.Event{itemAdded{"plum", 3}}},
			{ID: a, Type: "cart", ExpectedVersion: 2, Events: []domain.Event{itemRemoved{"apple"}}},
		},
		Metadata: eventstore.Metadata{ActorID: "user-2"},
	})
	clock.Set(times[2])
	third := mustAppend(t, s, eventstore.Append{
		Streams: []eventstore.Stream{{ID: a, Type: "cart", ExpectedVersion: 3, Events: []domain.Event{itemAdded{"fig \"🍈\" \\ ünï \u2028 \x00", 4}, itemRemoved{"pear"}}}},
	})
	for i, got := range []eventstore.Appended{first, second, third} {
		want := eventstore.Appended{FirstPosition: int64(2*i + 1), LastPosition: int64(2*i + 2)}
		if got != want {
			t.Errorf("append %d landed at %+v, want %+v", i+1, got, want)
		}
	}

	type want struct {
		stream     string
		streamType string
		version    int64
		event      domain.Event
		md         eventstore.Metadata
		at         time.Time
	}
	wants := []want{
		{a, "cart", 1, itemAdded{"apple", 1}, md, times[0]},
		{a, "cart", 2, itemAdded{"pear", 2}, md, times[0]},
		{b, "wishlist", 1, itemAdded{"plum", 3}, eventstore.Metadata{ActorID: "user-2"}, times[1]},
		{a, "cart", 3, itemRemoved{"apple"}, eventstore.Metadata{ActorID: "user-2"}, times[1]},
		{a, "cart", 4, itemAdded{"fig \"🍈\" \\ ünï \u2028 \x00", 4}, eventstore.Metadata{}, times[2]},
		{a, "cart", 5, itemRemoved{"pear"}, eventstore.Metadata{}, times[2]},
	}
	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(wants) {
		t.Fatalf("ReadAll returned %d events, want %d", len(all), len(wants))
	}
	ids := map[string]bool{}
	for i, env := range all {
		w := wants[i]
		if env.Position != int64(i+1) {
			t.Errorf("event %d: position %d", i, env.Position)
		}
		if env.StreamID != w.stream || env.StreamType != w.streamType || env.StreamVersion != w.version {
			t.Errorf("event %d: stream %s (%s) v%d, want %s (%s) v%d", i, env.StreamID, env.StreamType, env.StreamVersion, w.stream, w.streamType, w.version)
		}
		if env.EventType != w.event.EventType() {
			t.Errorf("event %d: type %q, want %q", i, env.EventType, w.event.EventType())
		}
		if _, err := uuid.Parse(env.EventID); err != nil || ids[env.EventID] {
			t.Errorf("event %d: event id %q is not a fresh uuid (%v)", i, env.EventID, err)
		}
		ids[env.EventID] = true
		wantPayload, _ := json.Marshal(w.event)
		if !jsonEqual(t, env.Payload, wantPayload) {
			t.Errorf("event %d: payload %s, want %s", i, env.Payload, wantPayload)
		}
		if env.Metadata != w.md {
			t.Errorf("event %d: metadata %+v, want %+v", i, env.Metadata, w.md)
		}
		wantAt := w.at.UTC().Truncate(time.Microsecond)
		if !env.RecordedAt.Equal(wantAt) || env.RecordedAt.Location() != time.UTC {
			t.Errorf("event %d: recorded at %v (%v), want %v in UTC", i, env.RecordedAt, env.RecordedAt.Location(), wantAt)
		}
		decoded, err := s.Registry().Decode(env)
		if err != nil || !reflect.DeepEqual(decoded, w.event) {
			t.Errorf("event %d: decoded %#v, %v; want %#v", i, decoded, err, w.event)
		}
	}

	versions := func(envs []eventstore.Envelope) []int64 {
		vs := []int64{}
		for _, e := range envs {
			vs = append(vs, e.StreamVersion)
		}
		return vs
	}
	for _, tc := range []struct {
		stream string
		after  int64
		want   []int64 // versions
	}{
		{a, 0, []int64{1, 2, 3, 4, 5}},
		{a, 3, []int64{4, 5}},
		{a, 5, []int64{}},
		{b, 0, []int64{1}},
		{"cart-missing", 0, []int64{}},
	} {
		envs, err := s.ReadStream(ctx, tc.stream, tc.after)
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(envs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadStream(%s, %d) versions = %v, want %v", tc.stream, tc.after, got, tc.want)
		}
		for _, e := range envs {
			if e.StreamID != tc.stream {
				t.Errorf("ReadStream(%s) returned an event of %s", tc.stream, e.StreamID)
			}
		}
	}
	for _, tc := range []struct {
		after int64
		limit int
		want  []int64
	}{
		{0, 100, []int64{1, 2, 3, 4, 5, 6}},
		{2, 3, []int64{3, 4, 5}},
		{4, 100, []int64{5, 6}},
		{0, 1, []int64{1}},
		{6, 10, []int64{}},
	} {
		envs, err := s.ReadAll(ctx, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := positions(envs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadAll(%d, %d) = %v, want %v", tc.after, tc.limit, got, tc.want)
		}
	}
	assertLog(t, s, db, 6)
}

func positions(envs []eventstore.Envelope) []int64 {
	ps := []int64{}
	for _, e := range envs {
		ps = append(ps, e.Position)
	}
	return ps
}

// TestReadTail reads the log keeping some types, or dropping some: the last event of the log comes
// along either way, so a reader may take the last position returned as where it stands.
func TestReadTail(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, eventstore.Options{})
	added, removed := itemAdded{}.EventType(), itemRemoved{}.EventType()
	// Positions 1 to 6: added, removed, added, removed, added, removed.
	for i := range 3 {
		mustAppend(t, s, one(fmt.Sprint("cart-", i), 0, itemAdded{Item: "x"}, itemRemoved{Item: "x"}))
	}
	for _, tc := range []struct {
		name          string
		after         int64
		limit         int
		types, except []string
		want          []int64
	}{
		{"everything", 0, 100, nil, nil, []int64{1, 2, 3, 4, 5, 6}},
		{"some types, the head comes along", 0, 100, []string{added}, nil, []int64{1, 3, 5, 6}},
		{"some types, a full batch stops before the head", 0, 2, []string{added}, nil, []int64{1, 3}},
		{"no type at all: only the head", 2, 100, []string{}, nil, []int64{6}},
		{"all types but some", 1, 100, nil, []string{added}, []int64{2, 4, 6}},
		{"all but the head's type", 0, 100, nil, []string{removed}, []int64{1, 3, 5, 6}},
		{"past the head", 6, 100, []string{added}, nil, []int64{}},
	} {
		envs, err := s.ReadTail(ctx, tc.after, tc.limit, tc.types, tc.except)
		if err != nil {
			t.Fatal(err)
		}
		if got := positions(envs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ReadTail = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestPositionsGaplessUnderConcurrency(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	// A second store on the same database is a second process: both take the sequence lock.
	other := openStore(t, db, eventstore.Options{})
	const writers, appends = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*appends)
	for w := range writers {
		store := s
		if w%2 == 1 {
			store = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("cart-%d-%s", w, uuid.NewString())
			for i := range appends {
				_, err := store.Append(context.Background(), one(stream, int64(2*i), items(2)...))
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	assertLog(t, s, db, writers*appends*2)
	// Every stream's versions are 1..n in position order.
	all, err := s.ReadAll(context.Background(), 0, writers*appends*2)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int64{}
	for _, env := range all {
		if env.StreamVersion != last[env.StreamID]+1 {
			t.Fatalf("position %d: %s v%d follows v%d", env.Position, env.StreamID, env.StreamVersion, last[env.StreamID])
		}
		last[env.StreamID] = env.StreamVersion
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	ctx := context.Background()
	a, b := "cart-"+uuid.NewString(), "cart-"+uuid.NewString()
	mustAppend(t, s, one(a, 0, items(2)...))
	mustAppend(t, s, one(b, 0, items(1)...))

	for _, tc := range []struct {
		name     string
		append   eventstore.Append
		stream   string
		expected int64
		actual   int64
	}{
		{"stale version", one(a, 1, items(1)...), a, 1, 2},
		{"new stream expected on an existing one", one(a, 0, items(1)...), a, 0, 2},
		{"version from the future", one(a, 3, items(1)...), a, 3, 2},
		{"existing stream expected on a new one", one("cart-new", 1, items(1)...), "cart-new", 1, 0},
		{"one stale stream of two", eventstore.Append{
			Streams: []eventstore.Stream{
				{ID: a, Type: "cart", ExpectedVersion: 2, Events: items(1)},
				{ID: b, Type: "cart", ExpectedVersion: 0, Events: items(1)},
			},
			Claims: []eventstore.Claim{{Key: "name:stale", StreamID: a}},
		}, b, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.append)
			var vc *eventstore.VersionConflictError
			if !errors.As(err, &vc) {
				t.Fatalf("err = %v, want a *VersionConflictError", err)
			}
			if !errors.Is(err, domain.ErrVersionConflict) {
				t.Errorf("err = %v does not match domain.ErrVersionConflict", err)
			}
			if vc.StreamID != tc.stream || vc.Expected != tc.expected || vc.Actual != tc.actual {
				t.Errorf("conflict = %+v, want stream %s expected %d actual %d", vc, tc.stream, tc.expected, tc.actual)
			}
			assertLog(t, s, db, 3)
			if n := countRows(t, db, `SELECT COUNT(*) FROM claims`); n != 0 {
				t.Errorf("a failed append left %d claims", n)
			}
		})
	}

	t.Run("AnyVersion", func(t *testing.T) {
		res := mustAppend(t, s, one(a, eventstore.AnyVersion, items(1)...))
		if res.FirstPosition != 4 || res.LastPosition != 4 {
			t.Errorf("landed at %+v, want position 4", res)
		}
		mustAppend(t, s, one("log-1", eventstore.AnyVersion, items(2)...))
		mustAppend(t, s, one("log-1", eventstore.AnyVersion, items(1)...))
		if v := streamVersion(t, db, a); v != 3 {
			t.Errorf("%s at version %d, want 3", a, v)
		}
		envs, err := s.ReadStream(ctx, "log-1", 0)
		if err != nil || len(envs) != 3 || envs[2].StreamVersion != 3 {
			t.Errorf("log-1 = %d events (%v), want versions 1..3", len(envs), err)
		}
		assertLog(t, s, db, 7)
	})
}

// TestConformanceRace is the store conformance case: writers that all decided on the same version
// race to append; exactly one wins.
func TestConformanceRace(t *testing.T) {
	const racers = 20
	for _, stores := range []int{1, racers} {
		t.Run(fmt.Sprintf("stores=%d", stores), func(t *testing.T) {
			s, db := newStore(t, eventstore.Options{})
			all := []*eventstore.Store{s}
			for len(all) < stores { // one store per racer: 20 processes on one database
				all = append(all, openStore(t, db, eventstore.Options{}))
			}
			stream := "cart-" + uuid.NewString()
			mustAppend(t, s, one(stream, 0, items(1)...))

			start := make(chan struct{})
			errs := make([]error, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = all[i%len(all)].Append(context.Background(), one(stream, 1, itemAdded{Item: fmt.Sprint("racer-", i)}))
				}()
			}
			close(start)
			wg.Wait()

			var wins, conflicts int
			for _, err := range errs {
				var vc *eventstore.VersionConflictError
				switch {
				case err == nil:
					wins++
				case errors.As(err, &vc) && errors.Is(err, domain.ErrVersionConflict) && vc.Actual == 2 && vc.Expected == 1:
					conflicts++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			if wins != 1 || conflicts != racers-1 {
				t.Fatalf("%d wins and %d conflicts, want 1 and %d", wins, conflicts, racers-1)
			}
			if v := streamVersion(t, db, stream); v != 2 {
				t.Fatalf("stream has %d events, want 2", v)
			}
			assertLog(t, s, db, 2)
		})
	}
}

func TestClaims(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	ctx := context.Background()
	holder := func(key string) string {
		t.Helper()
		var stream string
		err := db.QueryRow(`SELECT stream_id FROM claims WHERE claim_key = ?`, key).Scan(&stream)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return stream
	}
	withClaims := func(a eventstore.Append, releases []eventstore.Claim, claims ...eventstore.Claim) eventstore.Append {
		a.Claims, a.Releases = claims, releases
		return a
	}
	alice, bob := "user-"+uuid.NewString(), "user-"+uuid.NewString()

	mustAppend(t, s, withClaims(one(alice, 0, items(1)...), nil, eventstore.Claim{Key: "email:a@example.com", StreamID: alice}))
	if got := holder("email:a@example.com"); got != alice {
		t.Fatalf("email:a held by %q, want %s", got, alice)
	}

	t.Run("taken by another stream", func(t *testing.T) {
		// The free claim listed first must be undone too.
		_, err := s.Append(ctx, withClaims(one(bob, 0, items(2)...), nil,
			eventstore.Claim{Key: "email:b@example.com", StreamID: bob},
			eventstore.Claim{Key: "email:a@example.com", StreamID: bob}))
		var taken *eventstore.ClaimTakenError
		if !errors.As(err, &taken) || taken.Key != "email:a@example.com" {
			t.Fatalf("err = %v, want a *ClaimTakenError for email:a", err)
		}
		if !errors.Is(err, domain.ErrConflict) {
			t.Errorf("err = %v does not match domain.ErrConflict", err)
		}
		if got := holder("email:b@example.com"); got != "" {
			t.Errorf("email:b held by %q after a failed append", got)
		}
		if got := holder("email:a@example.com"); got != alice {
			t.Errorf("email:a held by %q, want %s", got, alice)
		}
		if v := streamVersion(t, db, bob); v != 0 {
			t.Errorf("failed append wrote %d events", v)
		}
		assertLog(t, s, db, 1)
	})

	t.Run("release then claim in a later append", func(t *testing.T) {
		// Alice changes her address: release a, claim c, in one append.
		mustAppend(t, s, withClaims(one(alice, 1, items(1)...), []eventstore.Claim{{Key: "email:a@example.com", StreamID: alice}},
			eventstore.Claim{Key: "email:c@example.com", StreamID: alice}))
		if got := holder("email:a@example.com"); got != "" {
			t.Errorf("email:a still held by %q", got)
		}
		if got := holder("email:c@example.com"); got != alice {
			t.Errorf("email:c held by %q, want %s", got, alice)
		}
		mustAppend(t, s, withClaims(one(bob, 0, items(1)...), nil, eventstore.Claim{Key: "email:a@example.com", StreamID: bob}))
		if got := holder("email:a@example.com"); got != bob {
			t.Errorf("email:a held by %q, want %s", got, bob)
		}
		assertLog(t, s, db, 3)
	})

	t.Run("failed release is undone", func(t *testing.T) {
		// A release in an append whose claim is taken must not free anything.
		_, err := s.Append(ctx, withClaims(one(alice, 2, items(1)...), []eventstore.Claim{{Key: "email:c@example.com", StreamID: alice}},
			eventstore.Claim{Key: "email:a@example.com", StreamID: alice}))
		if !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("err = %v, want a claim conflict", err)
		}
		if got := holder("email:c@example.com"); got != alice {
			t.Errorf("email:c held by %q, want %s (release rolled back)", got, alice)
		}
		assertLog(t, s, db, 3)
	})

	t.Run("claiming a key the stream already holds is no conflict", func(t *testing.T) {
		mustAppend(t, s, withClaims(one(alice, 2, items(1)...), nil, eventstore.Claim{Key: "email:c@example.com", StreamID: alice}))
		if got := holder("email:c@example.com"); got != alice {
			t.Errorf("email:c held by %q, want %s", got, alice)
		}
		assertLog(t, s, db, 4)
	})

	t.Run("another stream cannot release a key", func(t *testing.T) {
		mallory := "user-" + uuid.NewString()
		mustAppend(t, s, withClaims(one(mallory, 0, items(1)...), []eventstore.Claim{{Key: "email:c@example.com", StreamID: mallory}}))
		if got := holder("email:c@example.com"); got != alice {
			t.Errorf("email:c held by %q after another stream released it, want %s", got, alice)
		}
		assertLog(t, s, db, 5)
	})

	t.Run("keys differing by trailing spaces are different keys", func(t *testing.T) {
		padded := "user-" + uuid.NewString()
		mustAppend(t, s, withClaims(one(padded, 0, items(1)...), nil, eventstore.Claim{Key: "email:c@example.com ", StreamID: padded}))
		if got := holder("email:c@example.com "); got != padded {
			t.Errorf("padded key held by %q, want %s", got, padded)
		}
		mustAppend(t, s, one(alice+" ", 0, items(1)...))
		if v := streamVersion(t, db, alice+" "); v != 1 {
			t.Errorf("stream %q has %d events, want 1 (it is not %q)", alice+" ", v, alice)
		}
		assertLog(t, s, db, 7)
	})

	t.Run("20 racers for one key", func(t *testing.T) {
		const racers = 20
		streams := make([]string, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			streams[i] = "user-" + uuid.NewString()
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.Append(ctx, withClaims(one(streams[i], 0, items(1)...), nil, eventstore.Claim{Key: "email:race@example.com", StreamID: streams[i]}))
			}()
		}
		close(start)
		wg.Wait()
		winner := ""
		for i, err := range errs {
			var taken *eventstore.ClaimTakenError
			switch {
			case err == nil:
				if winner != "" {
					t.Errorf("both %s and %s won", winner, streams[i])
				}
				winner = streams[i]
			case errors.As(err, &taken):
				if v := streamVersion(t, db, streams[i]); v != 0 {
					t.Errorf("loser %s has %d events", streams[i], v)
				}
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if winner == "" {
			t.Fatal("nobody won the claim")
		}
		if got := holder("email:race@example.com"); got != winner {
			t.Errorf("claim held by %q, want the winner %s", got, winner)
		}
		assertLog(t, s, db, 8)
	})
}

// TestGroupCommitIsolatesConflicts queues appends that conflict (stale versions, taken claims)
// together with good ones, so they commit as one group: only the conflicting ones may fail.
func TestGroupCommitIsolatesConflicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, db := newStore(t, eventstore.Options{Metrics: reg})
	ctx := context.Background()
	existing := "cart-" + uuid.NewString()
	mustAppend(t, s, eventstore.Append{
		Streams: []eventstore.Stream{{ID: existing, Type: "cart", Events: items(1)}},
		Claims:  []eventstore.Claim{{Key: "name:taken", StreamID: existing}},
	})

	type kind int
	const (
		good kind = iota
		staleVersion
		takenClaim
		sameBatchClaim // good appends 0 and 3 of a round claim the same new key: the first queued wins
	)
	const rounds = 15
	type job struct {
		kind   kind
		stream string
		key    string
		err    error
	}
	var jobs []*job
	for r := range rounds {
		shared := fmt.Sprintf("name:shared-%d", r)
		for _, j := range []*job{
			{kind: good, key: shared},
			{kind: staleVersion},
			{kind: takenClaim, key: "name:taken"},
			{kind: sameBatchClaim, key: shared},
			{kind: good, key: fmt.Sprintf("name:own-%d", r)},
		} {
			j.stream = "cart-" + uuid.NewString()
			jobs = append(jobs, j)
		}
	}

	release := holdSequence(t, db)
	// The first append takes the writer into a transaction that waits for the lock.
	var wg sync.WaitGroup
	run := func(j *job) {
		defer wg.Done()
		a := one(j.stream, 0, items(2)...)
		if j.kind == staleVersion {
			a = one(existing, 0, items(2)...)
		}
		if j.key != "" {
			a.Claims = []eventstore.Claim{{Key: j.key, StreamID: j.stream}}
		}
		_, j.err = s.Append(ctx, a)
	}
	wg.Add(1)
	go run(jobs[0])
	writerBlocked(t, db, s, 0)
	// Queue the others strictly in order, so that the shared key's first claimant is known.
	for i, j := range jobs[1:] {
		wg.Add(1)
		go run(j)
		waitUntil(t, fmt.Sprintf("append %d is queued", i+1), func() bool { return eventstore.Queued(s) == i+1 })
	}
	release()
	wg.Wait()

	var okEvents int64 = 1
	for i, j := range jobs {
		switch j.kind {
		case good:
			if j.err != nil {
				t.Errorf("job %d (good) failed: %v", i, j.err)
			}
			if v := streamVersion(t, db, j.stream); v != 2 {
				t.Errorf("job %d (good): stream has %d events, want 2", i, v)
			}
			okEvents += 2
		case staleVersion:
			if !errors.Is(j.err, domain.ErrVersionConflict) {
				t.Errorf("job %d (stale) = %v, want a version conflict", i, j.err)
			}
		case takenClaim, sameBatchClaim:
			var taken *eventstore.ClaimTakenError
			if !errors.As(j.err, &taken) || taken.Key != j.key {
				t.Errorf("job %d (claim %s) = %v, want it taken", i, j.key, j.err)
			}
			if v := streamVersion(t, db, j.stream); v != 0 {
				t.Errorf("job %d (claim %s): stream has %d events, want 0", i, j.key, v)
			}
		}
	}
	if v := streamVersion(t, db, existing); v != 1 {
		t.Errorf("stale appends wrote to %s: %d events", existing, v)
	}
	assertLog(t, s, db, okEvents)
	if n, want := countRows(t, db, `SELECT COUNT(*) FROM claims`), 1+2*rounds; n != want {
		t.Errorf("%d claims, want %d", n, want)
	}
	// The setup append, the one that waited for the lock, then few groups for everything else.
	if b := batches(t, reg); b > 6 {
		t.Errorf("%d appends took %d group commits; the test meant to group them", len(jobs)+1, b)
	}
}

func TestValidation(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	good := eventstore.Stream{ID: "cart-1", Type: "cart", Events: items(1)}
	for _, tc := range []struct {
		name   string
		append eventstore.Append
		is     error
	}{
		{"empty append", eventstore.Append{}, nil},
		{"stream without events", eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart"}}}, nil},
		{"claims without events", eventstore.Append{Claims: []eventstore.Claim{{Key: "k", StreamID: "cart-1"}}}, nil},
		{"empty stream id", eventstore.Append{Streams: []eventstore.Stream{{Type: "cart", Events: items(1)}}}, nil},
		{"stream id too long", eventstore.Append{Streams: []eventstore.Stream{{ID: strings.Repeat("x", 256), Type: "cart", Events: items(1)}}}, nil},
		{"empty stream type", eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Events: items(1)}}}, nil},
		{"unregistered event type", eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart", Events: []domain.Event{itemAdded{}, unregistered{}}}}}, eventstore.ErrUnknownEventType},
		{"unregistered type in a second stream", eventstore.Append{Streams: []eventstore.Stream{good, {ID: "cart-2", Type: "cart", Events: []domain.Event{unregistered{}}}}}, eventstore.ErrUnknownEventType},
		{"same stream twice", eventstore.Append{Streams: []eventstore.Stream{good, good}}, nil},
		{"expected version below -1", eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart", ExpectedVersion: -2, Events: items(1)}}}, nil},
		{"claim without key", eventstore.Append{Streams: []eventstore.Stream{good}, Claims: []eventstore.Claim{{StreamID: "cart-1"}}}, nil},
		{"claim without stream", eventstore.Append{Streams: []eventstore.Stream{good}, Claims: []eventstore.Claim{{Key: "k"}}}, nil},
		{"payload that is not JSON", eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart", Events: []domain.Event{blob{Data: make(chan int)}}}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(context.Background(), tc.append)
			if err == nil {
				t.Fatal("append succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if isConflict(err) || errors.Is(err, eventstore.ErrClosed) {
				t.Errorf("err = %v, want a validation error", err)
			}
			assertLog(t, s, db, 0)
			if n := countRows(t, db, `SELECT COUNT(*) FROM claims`); n != 0 {
				t.Errorf("%d claims written", n)
			}
		})
	}
}

func TestClose(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	release := holdSequence(t, db)
	const queued = 50
	errs := make(chan error, queued)
	for i := range queued {
		go func() {
			_, err := s.Append(context.Background(), one(fmt.Sprint("cart-", i), 0, items(2)...))
			errs <- err
		}()
		if i == 0 {
			writerBlocked(t, db, s, 0) // the first takes the writer into its transaction
		}
	}
	writerBlocked(t, db, s, queued-1) // every other append now waits behind the blocked writer
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	waitUntil(t, "Close has begun", func() bool { return eventstore.Closing(s) })
	// Close must wait for the queue, so it cannot return while the writer is blocked.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while appends were still queued", err)
	default:
	}
	if _, err := s.Append(context.Background(), one("cart-late", 0, items(1)...)); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("append after Close = %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range queued {
		if err := <-errs; err != nil {
			t.Errorf("queued append: %v", err)
		}
	}
	assertLog(t, s, db, 2*queued)
	if _, err := s.Append(context.Background(), one("cart-late", 0, items(1)...)); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("append after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	// Append chooses at random between queueing and noticing the cancellation: try often.
	for i := range 100 {
		stream := fmt.Sprint("cart-", i)
		if _, err := s.Append(cancelled, one(stream, 0, items(1)...)); !errors.Is(err, context.Canceled) {
			t.Fatalf("append with a cancelled context = %v, want context.Canceled", err)
		}
		if _, err := s.Append(expired, one(stream, 0, items(1)...)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("append with an expired context = %v, want context.DeadlineExceeded", err)
		}
	}
	// A good append flushes the writer; it must find the log empty.
	if res := mustAppend(t, s, one("cart-ok", 0, items(1)...)); res.FirstPosition != 1 {
		t.Errorf("first real append landed at %d, want 1", res.FirstPosition)
	}
	assertLog(t, s, db, 1)
}

// TestGroupCommitRetriesOneByOne queues an append the server refuses among small ones, so they
// commit in one group: the refused one must fail alone.
func TestGroupCommitRetriesOneByOne(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		bad  func(t *testing.T, db *sql.DB) domain.Event
	}{
		{"payload over max_allowed_packet", func(t *testing.T, db *sql.DB) domain.Event {
			var maxPacket int
			if err := db.QueryRow(`SELECT @@max_allowed_packet`).Scan(&maxPacket); err != nil {
				t.Fatal(err)
			}
			if maxPacket > 64<<20 {
				t.Fatalf("max_allowed_packet is %d: this case needs a server at most 64 MiB (the driver's limit)", maxPacket)
			}
			return blob{Data: strings.Repeat("x", maxPacket+1<<20)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			s, db := newStore(t, eventstore.Options{Logger: logs.Logger()})
			bad := tc.bad(t, db)
			release := holdSequence(t, db)
			const small = 30
			errs := make(chan error, small)
			var badErr error
			var wg sync.WaitGroup
			send := func(i int) {
				defer wg.Done()
				_, err := s.Append(ctx, one(fmt.Sprint("cart-", i), 0, items(1)...))
				errs <- err
			}
			wg.Add(1)
			go send(0) // takes the writer into a transaction that waits for the lock
			writerBlocked(t, db, s, 0)
			for i := 1; i < small; i++ {
				wg.Add(1)
				go send(i)
				if i == small/2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, badErr = s.Append(ctx, one("cart-bad", 0, bad))
					}()
				}
			}
			// The bad event's encoding takes a while (a second for 17 MB under -race): wait for all.
			writerBlocked(t, db, s, small)
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("small append failed: %v", err)
				}
			}
			if badErr == nil || isConflict(badErr) {
				t.Errorf("bad append = %v, want the server's error", badErr)
			}
			if v := streamVersion(t, db, "cart-bad"); v != 0 {
				t.Errorf("bad append wrote %d events", v)
			}
			if !strings.Contains(logs.String(), `one by one" appends=30 `) {
				t.Errorf("the bad append did not fail in a group of 30; log:\n%s", logs.String())
			}
			assertLog(t, s, db, small)
			// The store is still healthy.
			mustAppend(t, s, one("cart-after", 0, items(1)...))
			assertLog(t, s, db, small+1)
		})
	}
}

func TestLocalHead(t *testing.T) {
	s, _ := newStore(t, eventstore.Options{})
	head, changed := s.LocalHead()
	if head != 0 {
		t.Fatalf("local head of a new store = %d", head)
	}
	select {
	case <-changed:
		t.Fatal("signalled before any append")
	default:
	}
	mustAppend(t, s, one("cart-1", 0, items(3)...))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("not signalled after an append")
	}
	if head, _ := s.LocalHead(); head != 3 {
		t.Errorf("local head = %d, want 3", head)
	}
	// A failed append does not move it.
	_, changed = s.LocalHead()
	if _, err := s.Append(context.Background(), one("cart-1", 0, items(1)...)); err == nil {
		t.Fatal("stale append succeeded")
	}
	select {
	case <-changed:
		t.Error("signalled by a failed append")
	default:
	}
}

func TestStreamWithoutEventsGuardsItsVersion(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	ctx := context.Background()
	read, write := "tenant-"+uuid.NewString(), "session-"+uuid.NewString()
	mustAppend(t, s, one(read, 0, items(2)...))
	guarded := func(expected int64) eventstore.Append {
		a := one(write, eventstore.AnyVersion, items(1)...)
		a.Streams = append(a.Streams, eventstore.Stream{ID: read, Type: "tenant", ExpectedVersion: expected})
		return a
	}
	mustAppend(t, s, guarded(2))
	if v := streamVersion(t, db, read); v != 2 {
		t.Fatalf("the guard appended to its stream: version %d, want 2", v)
	}
	_, err := s.Append(ctx, guarded(1))
	var vc *eventstore.VersionConflictError
	if !errors.As(err, &vc) || vc.StreamID != read {
		t.Fatalf("append with a stale guard = %v, want a version conflict on %s", err, read)
	}
	if v := streamVersion(t, db, write); v != 1 {
		t.Fatalf("a failed guard let %d events through, want 1 in all", v)
	}
}
