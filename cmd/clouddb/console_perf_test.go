package main

// The console's speed, measured in headless Chromium with performance.now() (docs/PERFORMANCE.md,
// "The web console's speed"): how soon a first load is interactive, the time from Ctrl-Enter to
// the first rows painted beyond the API's own, and how soon completion suggestions follow a
// keystroke in a database of 500 tables. A measurement, not a test of thresholds: it runs only
// when asked for, with CLOUDDB_CONSOLE_PERF=1, and logs its figures.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// perfHooks records, in the page, when keys go down, when the result grid first shows the value
// the measurement waits for and when that frame is painted, and when the completion list changes.
// It is evaluated through the DevTools protocol, which the page's CSP does not govern.
const perfHooks = `(() => {
	if (window.__perf) return;
	const p = window.__perf = {keys: [], rows: [], completions: [], want: null, ready: {}};
	addEventListener("keydown", e => p.keys.push(performance.now()), true);
	const seen = () => {
		const now = performance.now();
		if (!p.ready.form && document.querySelector("#app form input")) p.ready.form = now;
		if (!p.ready.list && document.querySelector("#app table.list, #app .empty")) p.ready.list = now;
		if (p.want !== null) {
			const td = document.querySelector("table.grid tbody td");
			if (td && td.textContent === p.want) {
				p.want = null;
				requestAnimationFrame(() => p.rows.push({dom: now, painted: performance.now()}));
			}
		}
		const list = document.querySelector(".cm-tooltip-autocomplete ul");
		const first = list && list.firstElementChild ? list.firstElementChild.textContent + "/" + list.children.length : "";
		if (first !== (p.lastCompletion || "")) {
			p.lastCompletion = first;
			if (first) p.completions.push(now);
		}
	};
	new MutationObserver(seen).observe(document, {subtree: true, childList: true, characterData: true});
})()`

type perfStats struct{ values []float64 }

func (s *perfStats) add(v float64) { s.values = append(s.values, v) }

func (s *perfStats) String() string {
	v := slices.Clone(s.values)
	slices.Sort(v)
	if len(v) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("median %.1f ms, p90 %.1f ms, max %.1f ms (%d samples)", v[len(v)/2], v[len(v)*9/10], v[len(v)-1], len(v))
}

func TestConsolePerformance(t *testing.T) {
	if os.Getenv("CLOUDDB_CONSOLE_PERF") == "" {
		t.Skip("a measurement, not a test: CLOUDDB_CONSOLE_PERF=1 runs it (docs/PERFORMANCE.md)")
	}
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{"CLOUDDB_PUBLIC_URL": "http://localhost"}}})
	admin := newTenantAdmin(env, "127.0.0.91", "Perf")
	db := createDatabase(t, admin.c, map[string]any{"name": "wide", "template": "blank"}).str("id")
	for from := 0; from < 500; from += 100 {
		var stmts []string
		for i := from; i < from+100; i++ {
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE t_%03d (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), created_at DATETIME)", i))
		}
		query(admin.c, db, strings.Join(stmts, ";\n"), map[string]any{"multi": true}).expect(t, 200, "")
	}
	b := newBrowser(t, env)
	b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(perfHooks).Do(ctx)
		return err
	}))
	ready := func(mark string) float64 {
		var ms float64
		b.run(chromedp.Poll(`window.__perf && window.__perf.ready.`+mark, &ms, chromedp.WithPollingTimeout(browserStep)))
		return ms
	}

	// First load: from the navigation's start to the page's first interactive form (the handlers
	// are attached when Preact renders it), with an empty cache, then with the assets cached.
	var cold, warm, signedIn perfStats
	for i := 0; i < 5; i++ {
		b.run(network.ClearBrowserCache())
		b.open("/login")
		cold.add(ready("form"))
		b.run(chromedp.Reload())
		warm.add(ready("form"))
	}
	b.fill("Email", admin.email)
	b.fill("Password", admin.password)
	b.click(button("Sign in"))
	b.waitText("wide")
	// Signed in, a load also refreshes the session and asks for /me and the databases.
	for i := 0; i < 5; i++ {
		b.run(chromedp.Reload())
		signedIn.add(ready("list"))
	}
	t.Logf("first load to an interactive sign-in form, empty cache: %s", &cold)
	t.Logf("first load to an interactive sign-in form, cached assets: %s", &warm)
	t.Logf("signed-in load to the databases list (refresh, /me, /databases), cached: %s", &signedIn)

	// Ctrl-Enter to the first rows painted, less the query request's own time as the browser saw it.
	b.click(`//a[normalize-space()="wide"]`)
	b.waitText("t_499")
	var overhead, request perfStats
	for i := 1; i <= 20; i++ {
		want := fmt.Sprint(1000 + i)
		b.run(chromedp.Evaluate(fmt.Sprintf(`__perf.want = %q; __perf.keys = []`, want), nil))
		b.typeSQL("SELECT " + want)
		var m struct {
			Start, Painted, API float64
		}
		b.run(chromedp.Poll(`__perf.rows.length >= `+fmt.Sprint(i)+` && (() => {
			const q = performance.getEntriesByType("resource").filter(e => e.name.endsWith("/query")).pop();
			return {start: __perf.keys[__perf.keys.length - 1], painted: __perf.rows[__perf.rows.length - 1].painted, api: q.responseEnd - q.startTime};
		})()`, &m, chromedp.WithPollingTimeout(browserStep)))
		overhead.add(m.Painted - m.Start - m.API)
		request.add(m.API)
	}
	t.Logf("Ctrl-Enter to the first rows painted, less the API's time: %s", &overhead)
	t.Logf("the query request itself (SELECT n, loopback): %s", &request)

	// Completion: the keystrokes of "t_49" after FROM, in a schema of 500 tables, to the list of
	// suggestions they change.
	var completion perfStats
	for round := 0; round < 10; round++ {
		b.run(chromedp.Click(".cm-content", chromedp.ByQuery), chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)),
			chromedp.KeyEvent(kb.Delete), chromedp.SendKeys(".cm-content", "SELECT * FROM ", chromedp.ByQuery), chromedp.KeyEvent(kb.Escape))
		for _, key := range []string{"t", "_", "4", "9"} {
			if key == "_" { // the same suggestions as after "t": nothing to see change
				b.run(chromedp.KeyEvent(key))
				continue
			}
			var before int
			b.run(chromedp.Evaluate(`__perf.completions.length`, &before))
			b.run(chromedp.KeyEvent(key))
			var d float64
			b.run(chromedp.Poll(fmt.Sprintf(`__perf.completions.length > %d && __perf.completions[%d] - __perf.keys[__perf.keys.length - 1]`, before, before),
				&d, chromedp.WithPollingTimeout(browserStep)))
			completion.add(d)
		}
		b.run(chromedp.KeyEvent(kb.Escape))
	}
	t.Logf("keystroke to changed completion suggestions, 500 tables: %s", &completion)
}
