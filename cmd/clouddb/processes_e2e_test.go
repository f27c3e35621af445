package main

import (
	"context"
	"encoding/base64"
	"sync"
	"testing"
)

// TestSeveralProcessesHoldTheLimits runs three Apps on one management database and one sandbox
// server, as three `clouddb serve` processes behind a load balancer (issue 11, item 7):
//
//   - 32 concurrent SELECT 1 spread over the three on one database of a free tenant
//     (MAX_USER_CONNECTIONS 10) are all answered 200: the processes' pools and tenant gates
//     share the plan's connections instead of each taking 5;
//   - a stop recorded by one process is seen by another at its very next query: database_stopped,
//     recorded so, and no intent follows the stop in the log; a start likewise;
//   - a per-IP limit of 5 mails then one a minute grants 5 over two processes, not 10.
func TestSeveralProcessesHoldTheLimits(t *testing.T) {
	keys := map[string]string{ // what the processes of one deployment share besides the databases
		"CLOUDDB_JWT_SECRET": randomHex(32),
		"CLOUDDB_SECRET_KEY": base64.StdEncoding.EncodeToString([]byte(randomHex(16))),
		"CLOUDDB_MAIL_DIR":   t.TempDir(), // any process may deliver a mail
		"CLOUDDB_QUERY_RATE": "1000",      // the connections are tested here, not the user's rate
		// Each process queues about 11 of the 32 behind its one or two sessions: on a loaded
		// machine that is more than the default 2 s (429 rate_limited, CI saw it once). A share
		// the server refuses (errno 1226) is still refused at once, whatever the wait.
		"CLOUDDB_QUERY_WAIT": "1m",
	}
	a, prefix := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: keys}})
	keys["CLOUDDB_SANDBOX_PREFIX"] = prefix
	envs := []*e2eEnv{a, startE2E(t, e2eOptions{DSN: a.dsn, Env: keys}), startE2E(t, e2eOptions{DSN: a.dsn, Env: keys})}
	for _, env := range envs { // the renewal every third of the lease's TTL, done now
		if err := env.app.Lease.Take(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := env.app.Lease.Processes(); n != 3 {
			t.Fatalf("a process counts %d processes, want 3", n)
		}
	}
	owner := newTenantAdmin(a, "127.0.0.70", "Three processes")
	id := createDatabase(t, owner.c, map[string]any{"name": "shared"}).str("id")
	var clients []*e2eClient
	for _, env := range envs {
		clients = append(clients, env.client("127.0.0.70").with(owner.c.token))
	}

	t.Run("connections", func(t *testing.T) {
		var wg sync.WaitGroup
		answers := make([][]*e2eResponse, 32)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 3 {
					answers[i] = append(answers[i], query(clients[i%3], id, "SELECT 1", nil))
				}
			}()
		}
		wg.Wait()
		for _, rs := range answers {
			for _, r := range rs {
				if r.status != 200 {
					t.Fatalf("SELECT 1 on three processes = %d: %s", r.status, r.body)
				}
			}
		}
	})

	t.Run("stop and start", func(t *testing.T) {
		query(clients[1], id, "SELECT 1", nil).expect(t, 200, "") // B knows the database running
		stopped := position(t, a.dsn)
		clients[0].do("POST", "/databases/"+id+"/stop", nil).expect(t, 200, "")
		query(clients[1], id, "SELECT 1", nil).expect(t, 423, "database_stopped")
		query(clients[2], id, "CREATE TABLE t (i INT)", nil).expect(t, 423, "database_stopped")
		var intents, refused int
		db := openEventsDB(t, a.dsn)
		if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE position > ? AND event_type = 'query.started.v1'
			AND JSON_VALUE(payload, '$.database_id') = ?`, stopped, id).Scan(&intents); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE position > ? AND event_type = 'query.executed.v1'
			AND JSON_VALUE(payload, '$.database_id') = ? AND JSON_VALUE(payload, '$.error_code') = 'database_stopped'`, stopped, id).Scan(&refused); err != nil {
			t.Fatal(err)
		}
		if intents != 0 || refused != 2 {
			t.Errorf("after the stop: %d intents, %d queries recorded database_stopped; want 0 and 2", intents, refused)
		}
		clients[0].do("POST", "/databases/"+id+"/start", nil).expect(t, 200, "")
		query(clients[1], id, "SELECT 1", nil).expect(t, 200, "")
		query(clients[2], id, "CREATE TABLE t (i INT)", nil).expect(t, 200, "")
	})

	t.Run("rate", func(t *testing.T) {
		granted := 0
		for i := range 8 {
			c := envs[i%2].client("127.0.0.71")
			switch r := c.do("POST", "/auth/password/forgot", map[string]any{"email": uniqueEmail("forgot")}); r.status {
			case 429:
				r.expect(t, 429, "rate_limited")
			default:
				granted++
			}
		}
		if granted != 5 {
			t.Errorf("two processes granted %d of 8 mail requests from one IP, want 5 (the limit is 5 then one a minute)", granted)
		}
	})
}

// position is the head of the log.
func position(t *testing.T, dsn string) int64 {
	t.Helper()
	var head int64
	if err := openEventsDB(t, dsn).QueryRow(`SELECT last_position FROM event_sequence WHERE id = 1`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	return head
}
