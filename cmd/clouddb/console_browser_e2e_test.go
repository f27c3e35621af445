package main

// The web console driven in Debian's Chromium (headless, through chromedp) against a real App and
// MariaDB: sign-up through the mail link, sign-in, a first tenant, a database from the sample
// template, a query whose cell holds markup shown as text, a silent refresh of an expired access
// token, and a viewer's read-only view. Every page is checked with axe-core and for CSP
// violations. CLOUDDB_CONSOLE_SCREENSHOTS=dir keeps a screenshot of each page, light and dark.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/pquerna/otp/totp"
)

// browser is one headless Chromium tab on the console of env.
type browser struct {
	t      *testing.T
	env    *e2eEnv
	origin string // http://127.0.0.1:port
	ctx    context.Context

	mu       sync.Mutex
	problems []string // uncaught exceptions, console errors (CSP violations among them), dialogs

	grantClipboard sync.Once // copy's permission to read the clipboard
	downloads      sync.Once // download's listener and directory
	downloadDir    string
	downloaded     chan *cdpbrowser.EventDownloadWillBegin
}

// axeSource is axe-core's script, from web/node_modules (make console installs it).
var axeSource = sync.OnceValues(func() ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "..", "web", "node_modules", "axe-core", "axe.min.js"))
})

// newBrowser starts Chromium (from PATH: `apt-get install chromium`; .ci/run installs it) with a
// fresh profile, so each browser has its own cookies.
func newBrowser(t *testing.T, env *e2eEnv) *browser {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not on PATH (apt-get install chromium): the console's browser tests need it")
	}
	// The profile is chromedp's own temporary directory, removed once the browser has exited: a
	// t.TempDir failed the test when Chromium's helpers still wrote to it during the cleanup.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 860))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// This chromedp's protocol tables predate some events of today's Chromium: not our problem.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled") {
			t.Logf("chromedp: %s", msg)
		}
	}))
	// The whole browser is bounded by go test's -timeout; only a step has a deadline of its own.
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, env: env, origin: "http://" + env.app.Addr(), ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		var problem string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problem = "uncaught exception: " + ev.ExceptionDetails.Error()
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problem = "console.error: " + strings.Join(args, " ")
			}
		case *page.EventJavascriptDialogOpening:
			problem = "a dialog opened: " + ev.Message
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) //nolint:errcheck // the problem is reported
		}
		if problem != "" {
			b.mu.Lock()
			b.problems = append(b.problems, problem)
			b.mu.Unlock()
		}
	})
	// The first Run starts the browser, bound to the context it runs with: b.ctx, not a step's.
	if err := chromedp.Run(ctx, runtime.Enable(), page.Enable()); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return b
}

// browserStep bounds one step of a browser test. A step that is broken never completes, whatever
// its deadline, so the deadline is generous: a loaded CI machine must not fail a working step.
const browserStep = 60 * time.Second

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	// A step that cannot happen fails, with what the page shows.
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (%s)", err, b.snapshot())
	}
}

// snapshot is the visible text of the page, for failure messages.
func (b *browser) snapshot() string {
	var text string
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second) // a failure message should not wait a step's minute
	defer cancel()
	chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text)) //nolint:errcheck // best effort
	return "page text: " + strings.Join(strings.Fields(text), " ")
}

func (b *browser) open(path string) { b.run(chromedp.Navigate(b.origin + path)) }

// xpath helpers: the console is driven by what a person reads (labels, button text).
func button(text string) string { return fmt.Sprintf(`//button[normalize-space()=%q]`, text) }
func field(label string) string {
	return fmt.Sprintf(`//input[@id=//label[normalize-space()=%q]/@for]`, label)
}

func (b *browser) fill(label, value string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(field(label), chromedp.BySearch), chromedp.Click(field(label), chromedp.BySearch),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)), chromedp.KeyEvent(kb.Backspace),
		chromedp.SendKeys(field(label), value, chromedp.BySearch))
}

func (b *browser) click(xpath string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(xpath, chromedp.BySearch), chromedp.Click(xpath, chromedp.BySearch))
}

// waitText waits until the page shows text.
func (b *browser) waitText(text string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(fmt.Sprintf(`//body//*[contains(normalize-space(), %q)][not(*[contains(normalize-space(), %q)])]`, text, text), chromedp.BySearch))
}

// check runs axe-core on the page (no serious or critical violation), reports what the page
// logged as a problem so far, and keeps screenshots when asked to.
func (b *browser) check(name string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatalf("axe-core: %v (run make console: it installs web/node_modules)", err)
	}
	var found []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []string `json:"target"`
		} `json:"nodes"`
	}
	var loaded bool
	b.run(chromedp.Evaluate(`typeof axe !== "undefined"`, &loaded))
	if !loaded {
		b.run(chromedp.Evaluate(string(src), nil))
	}
	b.run(chromedp.Evaluate(`axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "best-practice"]}).then(r => r.violations)`, &found,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	for _, v := range found {
		if v.Impact == "serious" || v.Impact == "critical" {
			targets, _ := json.Marshal(v.Nodes)
			b.t.Errorf("%s: axe %s (%s): %s at %s", name, v.ID, v.Impact, v.Help, targets)
		}
	}
	b.mu.Lock()
	for _, p := range b.problems {
		b.t.Errorf("%s: %s", name, p)
	}
	b.problems = nil
	b.mu.Unlock()
	dir := os.Getenv("CLOUDDB_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	for _, scheme := range []string{"light", "dark"} {
		var png []byte
		b.run(emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}),
			chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile(filepath.Join(dir, name+"-"+scheme+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.run(emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))
}

// narrow shows the page in a window 400 pixels wide, as on a phone: nothing may reach past its
// right edge (the page scrolls only down), and check runs there (screenshots named name-narrow).
func (b *browser) narrow(name string) {
	b.t.Helper()
	b.run(emulation.SetDeviceMetricsOverride(400, 860, 1, false))
	defer b.run(emulation.ClearDeviceMetricsOverride())
	var overflow []string
	b.run(chromedp.Evaluate(`document.documentElement.scrollWidth > innerWidth ? [...document.querySelectorAll("body *")]
		.filter(e => e.getBoundingClientRect().right > innerWidth + 1 && !e.closest(".grid-wrap, .table-scroll, .cm-editor, .editor-tabs"))
		.map(e => e.tagName + "." + e.className).slice(0, 5) : []`, &overflow))
	if len(overflow) > 0 {
		b.t.Errorf("%s at 400 px: the page is wider than the window because of %v", name, overflow)
	}
	b.check(name + "-narrow")
}

// mailLink is the path and query of a mail's link, to be opened on this server.
func mailLink(t *testing.T, m e2eMail) string {
	t.Helper()
	u, err := url.Parse(m.link)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

// text is the text of the first element that matches the CSS selector, once it is visible.
func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	b.run(chromedp.WaitVisible(selector, chromedp.ByQuery), chromedp.Text(selector, &s, chromedp.ByQuery))
	return strings.TrimSpace(s)
}

// copy clicks the copy button of xpath and returns what it put on the clipboard, once done says
// it is there (the clipboard is written asynchronously).
func (b *browser) copy(xpath string, done func(string) bool) string {
	b.t.Helper()
	b.grantClipboard.Do(func() {
		b.run(cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{cdpbrowser.PermissionTypeClipboardReadWrite,
			cdpbrowser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(b.origin))
	})
	// What an earlier copy left there must not pass for this one.
	b.run(chromedp.Evaluate(`navigator.clipboard.writeText("")`, nil, awaitPromise))
	b.click(xpath)
	var copied string
	for deadline := time.Now().Add(browserStep); !done(copied) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization: the deadline decides
		b.run(chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, awaitPromise))
	}
	return copied
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// download clicks the button of xpath and returns the file it downloads, whose name must end in ext
// (the API names it after the query).
func (b *browser) download(xpath, ext string) []byte {
	b.t.Helper()
	b.downloads.Do(func() {
		b.downloadDir = b.t.TempDir()
		b.downloaded = make(chan *cdpbrowser.EventDownloadWillBegin, 1)
		var mu sync.Mutex
		begun := map[string]*cdpbrowser.EventDownloadWillBegin{}
		chromedp.ListenTarget(b.ctx, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch e := ev.(type) {
			case *cdpbrowser.EventDownloadWillBegin:
				begun[e.GUID] = e
			case *cdpbrowser.EventDownloadProgress:
				if e.State == cdpbrowser.DownloadProgressStateCompleted && begun[e.GUID] != nil {
					b.downloaded <- begun[e.GUID]
				}
			}
		})
		b.run(cdpbrowser.SetDownloadBehavior(cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(b.downloadDir).WithEventsEnabled(true))
	})
	b.click(xpath)
	select {
	case e := <-b.downloaded:
		if !strings.HasPrefix(e.SuggestedFilename, "query-") || !strings.HasSuffix(e.SuggestedFilename, ext) {
			b.t.Errorf("the download is named %q, want query-…%s", e.SuggestedFilename, ext)
		}
		data, err := os.ReadFile(filepath.Join(b.downloadDir, e.GUID))
		if err != nil {
			b.t.Fatal(err)
		}
		return data
	case <-time.After(browserStep):
		b.t.Fatalf("%s downloaded nothing (%s)", xpath, b.snapshot())
		return nil
	}
}

// choose selects the option of value in the select of the CSS selector, as a person's choice does
// (with its change event).
func (b *browser) choose(selector, value string) {
	b.t.Helper()
	// The option first: a select whose options are still loading would take no value.
	b.run(chromedp.WaitEnabled(selector, chromedp.ByQuery), chromedp.WaitReady(fmt.Sprintf(`%s option[value=%q]`, selector, value), chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(
			`(s => { s.value = %q; s.dispatchEvent(new Event("change", {bubbles: true})) })(document.querySelector(%q))`, value, selector), nil))
}

// databaseID is the id of the member's database of that name.
func databaseID(t *testing.T, m dbMember, name string) string {
	t.Helper()
	for _, d := range m.c.do("GET", "/databases", nil).items("items") {
		if d, _ := d.(map[string]any); d["name"] == name {
			return d["id"].(string)
		}
	}
	t.Fatalf("no database %s", name)
	return ""
}

// typeSQL replaces the editor's text by sql and runs it with Ctrl+Enter.
func (b *browser) typeSQL(sql string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(".cm-content", chromedp.ByQuery), chromedp.Click(".cm-content", chromedp.ByQuery),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(input.ModifierCtrl)), chromedp.KeyEvent(kb.Delete),
		chromedp.SendKeys(".cm-content", sql, chromedp.ByQuery), chromedp.KeyEvent(kb.Escape),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(input.ModifierCtrl)))
}

func TestConsoleInBrowser(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword,
		Env: map[string]string{"CLOUDDB_PUBLIC_URL": "http://localhost", "CLOUDDB_ACCESS_TOKEN_TTL": "1m"}}})
	b := newBrowser(t, env)
	email, password := uniqueEmail("ada"), strongPassword()
	env.secret(password, "password")

	// Register, then follow the mail's link: the token leaves the address bar at once.
	b.open("/register")
	b.check("register")
	b.fill("Name", "Ada Lovelace")
	b.fill("Email", email)
	b.fill("Password", password)
	b.click(button("Create account"))
	b.waitText("Check your mail")
	b.open(mailLink(t, env.waitMail(email, "verify")))
	b.waitText("Your account is active.")
	var location string
	b.run(chromedp.Location(&location))
	if strings.Contains(location, "token") {
		t.Errorf("after the verification link the address is %s, want the token gone", location)
	}
	b.check("verified")

	// Sign in: the introduction leads a person without a tenant to one (signing in to it), a
	// first database from the sample template and a first query that returns rows.
	b.click(`//a[normalize-space()="Sign in"]`)
	b.fill("Email", email)
	b.fill("Password", password)
	b.check("login")
	b.click(button("Sign in"))
	b.waitText("A tenant holds your databases")
	b.check("welcome-tenant")
	b.fill("Tenant name", "Acme")
	b.click(button("Create tenant"))
	b.waitText("Sign in to")
	b.fill("Password", password)
	b.click(button("Sign in"))
	b.waitText("The sample template comes with a small shop")
	b.check("welcome-database")
	b.click(button("Create it from the sample template"))
	b.click(button("Run this query"))
	b.waitText("10 rows ·")
	b.check("welcome-query")
	b.click(button("Finish"))
	b.run(chromedp.WaitVisible(`//a[normalize-space()="shop"]`, chromedp.BySearch))
	b.check("databases")

	// The tenant's plan and usage.
	b.click(`//nav//a[normalize-space()="Tenant"]`)
	b.waitText("Limits of a query")
	var meters []string
	b.run(chromedp.Evaluate(`[...document.querySelectorAll("[role=meter]")].map(m => m.getAttribute("aria-valuetext"))`, &meters))
	if fmt.Sprint(meters) != "[1 of 5 0 B of 1.0 GiB 0 of 10 1 of 5]" {
		t.Errorf("usage meters = %q, want databases, storage, connections and members against the free plan", meters)
	}
	b.check("tenant")

	// Another database, blank: what it uses of the quota is shown before it is created.
	b.click(`//nav//a[normalize-space()="Databases"]`)
	b.click(button("New database"))
	b.fill("Name", "scratch")
	b.choose("#template", "blank")
	b.check("database-create")
	b.click(button("Continue"))
	b.waitText("The tenant's databases go from 1 to 2 of 5.")
	b.check("database-create-impact")
	b.click(button("Create database"))
	b.run(chromedp.WaitVisible(`//a[normalize-space()="scratch"]`, chromedp.BySearch))

	// Connection details: the password only on request, a new one after a rotation.
	b.click(`//button[@aria-label="Connection details of shop"]`)
	b.waitText("mariadb -h ")
	b.click(button("Reveal password"))
	first := b.text("code.secret")
	env.secret(first, "database password")
	// Each copy button puts its value on the clipboard: the API's, and the command line made of them.
	api := env.client("127.0.0.70")
	api = api.with(api.login(email, password, "").access)
	conn := api.do("GET", "/databases/"+databaseID(t, dbMember{c: api}, "shop")+"/connection?reveal=password", nil).expect(t, 200, "")
	port := fmt.Sprint(conn.num("port"))
	for label, want := range map[string]string{"Copy the host": conn.str("host"), "Copy the port": port,
		"Copy the database": conn.str("database"), "Copy the user": conn.str("username"), "Copy the password": conn.str("password"),
		"Copy the command line": "mariadb -h " + conn.str("host") + " -P " + port + " -u " + conn.str("username") + " -p " + conn.str("database")} {
		if got := b.copy(fmt.Sprintf(`//button[@aria-label=%q]`, label), func(s string) bool { return s == want }); got != want || want == "" {
			t.Errorf("%s put %q on the clipboard, want %q", label, got, want)
		}
	}
	b.check("database-connection")
	b.click(button("Rotate password…"))
	b.click(button("Rotate now"))
	b.run(chromedp.WaitNotPresent(fmt.Sprintf(`//code[@class="secret"][normalize-space()=%q]`, first), chromedp.BySearch))
	env.secret(b.text("code.secret"), "database password")
	b.click(button("Done"))
	b.click(`//a[normalize-space()="shop"]`)
	b.waitText("customers") // the schema browser lists the sample's tables

	// Markup in a value is shown as its characters; NULL is not the string 'NULL'.
	const markup = `<img src=x onerror=alert(1)>`
	b.typeSQL(`SELECT '` + markup + `' AS html, NULL AS nothing, 'NULL' AS word, 42 AS answer`)
	b.run(chromedp.WaitVisible(`table.grid tbody td`, chromedp.ByQuery))
	var cells []map[string]string
	b.run(chromedp.Evaluate(`[...document.querySelectorAll("table.grid tbody td")].map(td => ({text: td.textContent, class: td.className}))`, &cells))
	var images int
	b.run(chromedp.Evaluate(`document.querySelectorAll("table.grid img").length`, &images))
	want := []map[string]string{{"text": markup, "class": ""}, {"text": "NULL", "class": "null"}, {"text": "NULL", "class": ""}, {"text": "42", "class": "num"}}
	if fmt.Sprint(cells) != fmt.Sprint(want) || images != 0 {
		t.Errorf("result cells = %v with %d images, want %v and none", cells, images, want)
	}
	b.check("editor")

	// A statement the API wants confirmed asks first, saying what happens, and runs when confirmed.
	b.typeSQL(`DROP TABLE orders`)
	b.waitText("Confirm this statement")
	b.check("editor-confirm")
	b.click(button("Run it"))
	b.waitText("rows affected")
	// The schema browser forgets the dropped table.
	b.run(chromedp.WaitNotPresent(`//ul[@class="tree"]//button[normalize-space()="orders"]`, chromedp.BySearch))

	// The access token expires (1 minute); the next request refreshes silently and succeeds, and
	// a reload signs back in from the refresh cookie. The clock passes the 5 minutes after which
	// a change of owner needs the password again.
	env.clock.Advance(6 * time.Minute)
	b.typeSQL(`SELECT COUNT(*) AS n FROM customers`)
	b.waitText("1 row ·")
	b.run(chromedp.Reload())
	b.waitText("customers")

	c := env.client("127.0.0.71")
	admin := dbMember{email: email, password: password}
	s := c.login(email, password, "")
	admin.tenantID = s.resp.str("tenant.id")
	admin.c = c.with(s.access)
	viewer := invite(env, admin, "127.0.0.72", "viewer")

	// Tabs keep their SQL across a reload (and localStorage holds nothing but those drafts).
	b.click(`//button[@aria-label="New editor tab"]`)
	b.typeSQL(`SELECT REPEAT('x', 300) AS long_value, x'0001FF' AS bytes, 'a' AS short`)
	// A tab is renamed from the keyboard (the pencil of the current tab, or F2) or by a double-click;
	// Escape keeps the name it had. The names are kept with the drafts.
	renameTo := func(tab, name, end string) {
		t.Helper()
		input := fmt.Sprintf(`//input[@aria-label="Name of the tab %s"]`, tab)
		b.run(chromedp.WaitVisible(input, chromedp.BySearch), chromedp.KeyEvent(name), chromedp.KeyEvent(end))
		b.run(chromedp.WaitNotPresent(input, chromedp.BySearch))
	}
	b.click(`//button[@aria-label="Rename Query 2"]`)
	b.run(chromedp.WaitVisible(`//input[@aria-label="Name of the tab Query 2"]`, chromedp.BySearch))
	b.check("editor-tab-rename")
	renameTo("Query 2", "Long values", kb.Enter)
	b.run(chromedp.DoubleClick(button("Long values"), chromedp.BySearch))
	renameTo("Long values", "Never named", kb.Escape)
	b.click(button("Query 1"))
	b.run(chromedp.Focus(button("Query 1"), chromedp.BySearch), chromedp.KeyEvent(kb.F2))
	renameTo("Query 1", "Counts", kb.Enter)
	b.run(chromedp.Reload())
	b.click(button("Counts"))
	b.click(button("Long values"))
	b.waitText("long_value") // the draft, in the editor
	var stored []string
	b.run(chromedp.Evaluate(`Object.keys(localStorage).map(k => k + "=" + localStorage.getItem(k))`, &stored))
	if len(stored) != 1 || !strings.HasPrefix(stored[0], "clouddb.editor.") || strings.Contains(stored[0], "eyJ") {
		t.Errorf("localStorage = %q, want the editor's drafts only", stored)
	}
	// Binary shows as bytes, a long value is cut and shown whole on request.
	b.run(chromedp.Click(".cm-content", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(input.ModifierCtrl)))
	if got := b.text("table.grid td.binary"); got != "0x0001FF (3 bytes)" {
		t.Errorf("binary cell = %q, want 0x0001FF (3 bytes)", got)
	}
	b.click(`//button[@aria-label="Show the whole value of long_value in row 1"]`)
	if got := b.text("pre.whole"); got != strings.Repeat("x", 300) {
		t.Errorf("the whole value = %q, want 300 x", got)
	}
	b.check("editor-whole-value")
	b.click(button("Close"))

	// 1,000 rows: the grid draws the rows in view, and the last one when scrolled to it.
	b.typeSQL(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT i, CONCAT('row ', i) AS label FROM n`)
	b.waitText("1,000 rows ·")
	var drawn int
	b.run(chromedp.Evaluate(`document.querySelectorAll("table.grid tbody td").length`, &drawn))
	if drawn == 0 || drawn > 200 {
		t.Errorf("%d cells drawn for 1,000 rows of 2 columns, want only those in view", drawn)
	}
	// Scrolled again at each frame until drawn: the grid puts new rows at the top in an effect that
	// runs after the rows are shown ("1,000 rows" above), so a single scroll right after may be
	// undone, and on a loaded machine it was (the page still showed rows 1-24 a minute later).
	b.run(chromedp.Poll(`(w => (w.scrollTop = w.scrollHeight, w.innerText.includes("row 1000")))(document.querySelector(".grid-wrap"))`, nil))
	b.waitText("row 1000")
	b.check("editor-1000-rows")
	// Copy puts the page's rows on the clipboard as tab-separated text.
	copied := b.copy(`//button[@aria-label="Copy these rows as tab-separated text"]`, func(s string) bool { return strings.HasPrefix(s, "i\tlabel") })
	if lines := strings.Split(copied, "\n"); len(lines) != 1001 || lines[0] != "i\tlabel" || lines[1000] != "1000\trow 1000" {
		t.Errorf("copied %d lines, from %.40q, want the header and 1,000 rows", len(lines), copied)
	}

	// Export: the whole result, downloaded with the session's token, in each format.
	if csv := b.download(`//button[@aria-label="Export as CSV"]`, ".csv"); !strings.HasPrefix(string(csv), "i,label\r\n1,row 1\r\n") ||
		strings.Count(string(csv), "\r\n") != 1001 {
		t.Errorf("the CSV export = %.60q…, want the header and 1,000 rows", csv)
	}
	var objects []map[string]any
	if js := b.download(`//button[@aria-label="Export as JSON"]`, ".json"); json.Unmarshal(js, &objects) != nil || len(objects) != 1000 ||
		fmt.Sprint(objects[0]) != "map[i:1 label:row 1]" || fmt.Sprint(objects[999]) != "map[i:1000 label:row 1000]" {
		t.Errorf("the JSON export = %.60q…, want 1,000 objects of i and label", js)
	}
	// SQL: INSERT statements of 100 rows (one a line) into a table named result.
	if sql := string(b.download(`//button[@aria-label="Export as SQL"]`, ".sql")); !strings.HasPrefix(sql, "INSERT INTO `result` (`i`, `label`) VALUES\n(1, 'row 1'),\n(2, 'row 2')") ||
		strings.Count(sql, "INSERT INTO `result` (`i`, `label`) VALUES\n") != 10 || !strings.HasSuffix(sql, "(1000, 'row 1000');\n") {
		t.Errorf("the SQL export = %.80q…, want 10 INSERT statements of the 1,000 rows", sql)
	}

	// An error in words, with its hint and a jump to where it is.
	b.typeSQL("SELECT id FROM customers WHERE")
	b.waitText("The statement ends before it is complete.")
	b.click(button("Go to the error"))
	var focused bool
	b.run(chromedp.Evaluate(`document.activeElement.classList.contains("cm-content")`, &focused))
	if !focused {
		t.Error("Go to the error leaves the editor unfocused")
	}
	b.check("editor-error")

	// A statement past the tenant's timeout (504), a stopped database (423).
	// (The query API keeps a database's settings for a second: the clock moves past it.)
	admin.c.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 1}).expect(t, 200, "")
	env.clock.Advance(2 * time.Second)
	b.typeSQL(`SELECT SLEEP(3)`)
	b.waitText("The query ran past its timeout")
	admin.c.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 30}).expect(t, 200, "")
	env.clock.Advance(2 * time.Second)
	admin.c.do("POST", "/databases/"+databaseID(t, admin, "shop")+"/stop", nil).expect(t, 200, "")
	b.typeSQL(`SELECT 1`)
	b.waitText("The database is stopped")
	b.waitText("Stopped") // the state beside the name follows
	b.check("editor-stopped")
	b.click(button("Start the database"))
	b.run(chromedp.WaitNotPresent(button("Start the database"), chromedp.BySearch))
	b.typeSQL(`SELECT 'started' AS state`)
	b.waitText("started")

	// On a plan that archives, a result can be kept.
	root := env.client("127.0.0.73")
	super := root.with(root.login(rootEmail, rootPassword, "").access)
	super.do("PUT", "/admin/tenants/"+admin.tenantID+"/plan", map[string]any{"plan": "pro"}).expect(t, 200, "")
	b.run(chromedp.Reload())
	b.typeSQL(`SELECT 'kept' AS archived`)
	b.click(button("Archive"))
	b.run(chromedp.WaitVisible(button("Archived"), chromedp.BySearch))

	// The admin gives the database to the viewer, confirming the password when asked; deletes it
	// and restores it within the recovery window.
	b.click(`//nav//a[normalize-space()="Databases"]`)
	b.click(`//button[@aria-label="Change the owner of scratch"]`)
	b.choose("#owner", viewer.userID)
	b.click(button("Change owner"))
	b.waitText("Confirm it is you")
	b.fill("Your password", password)
	b.check("database-owner-reauth")
	b.click(button("Confirm"))
	b.run(chromedp.WaitNotPresent(`dialog`, chromedp.ByQuery))
	if owner := admin.c.do("GET", "/databases/"+databaseID(t, admin, "scratch"), nil).str("owner_id"); owner != viewer.userID {
		t.Errorf("after the change of owner, owner_id = %v, want the viewer %s", owner, viewer.userID)
	}
	b.click(`//button[@aria-label="Delete scratch"]`)
	b.fill("Name of the database", "scratch")
	b.click(button("Delete database"))
	b.click(button("Show deleted databases (1) that can still be restored"))
	b.waitText("Restorable until")
	b.check("databases-deleted")
	b.click(`//button[@aria-label="Restore scratch"]`)
	b.run(chromedp.WaitVisible(`//a[normalize-space()="scratch"]`, chromedp.BySearch))

	// The viewer has a tenant of their own too, to switch to.
	vc := env.client("127.0.0.74")
	own := vc.with(vc.login(viewer.email, viewer.password, "").access).do("POST", "/tenants", map[string]any{"name": "Babbage"}).expect(t, 201, "").str("id")
	viewerSessions := func() int {
		t.Helper()
		return len(vc.with(vc.login(viewer.email, viewer.password, own).access).do("GET", "/me/sessions", nil).items("items"))
	}

	// A viewer sees a read-only editor and no write actions.
	b.click(button("Sign out"))
	b.waitText("Forgot your password?")
	b.fill("Email", viewer.email)
	b.fill("Password", viewer.password)
	b.click(button("Sign in"))
	b.waitText("You belong to several tenants.") // a sign-in asks which
	b.check("login-choose-tenant")
	b.click(button("Acme (viewer)"))
	b.run(chromedp.WaitVisible(`//a[normalize-space()="shop"]`, chromedp.BySearch))
	var writeButtons int
	b.run(chromedp.Evaluate(`[...document.querySelectorAll("button")].filter(x => /New database|Stop|Delete/.test(x.textContent)).length`, &writeButtons))
	if writeButtons != 0 {
		t.Errorf("a viewer sees %d write buttons on the databases page", writeButtons)
	}
	b.check("databases-viewer")
	b.narrow("databases-viewer")
	b.click(`//a[normalize-space()="shop"]`)
	b.waitText("Read-only")
	b.check("editor-viewer")
	b.narrow("editor-viewer")
	b.click(`//nav//a[normalize-space()="Tenant"]`)
	b.waitText("Limits of a query")
	b.narrow("tenant-viewer")

	// Switching tenant asks for the password only, in place (a session belongs to one tenant and
	// only a login opens one), and ends the session it leaves: one more session for the login
	// that counts them, none for the switch.
	before := viewerSessions()
	b.choose(".tenant-switch select", own)
	b.waitText("Switch to Babbage")
	b.check("tenant-switch")
	b.fill("Your password", viewer.password)
	b.click(button("Switch"))
	b.run(chromedp.WaitVisible(button("New database"), chromedp.BySearch)) // an admin there
	if after := viewerSessions(); after != before+1 {
		t.Errorf("%d sessions after the switch, %d before: want the one it left ended", after, before)
	}
}

// totpCode is the code of secret (as the console shows it, in groups) at the App's time.
func totpCode(t *testing.T, env *e2eEnv, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(strings.ReplaceAll(secret, " ", ""), env.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// The account pages and the mail links after sign-up: an invitation accepted with a new
// account, sessions, API keys, two factors set up and used to sign in, a change of password
// that asks for the password again, forgot and reset through the mail's link, and the waits of a
// rate limit (429) and a locked account (423).
func TestConsoleAccountInBrowser(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{"CLOUDDB_PUBLIC_URL": "http://localhost"}}})
	admin := newTenantAdmin(env, "127.0.0.81", "Globex")
	b := newBrowser(t, env)

	// The invitation's link creates the account and joins the tenant.
	email, password := uniqueEmail("grace"), strongPassword()
	env.secret(password, "password")
	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{email}, "role": "developer"}).expect(t, 201, "")
	b.open(mailLink(t, env.waitMail(email, "invited")))
	b.fill("Name", "Grace Hopper")
	b.fill("Password", password)
	b.check("invitation")
	b.click(button("Join"))
	b.waitText("You are a member of Globex.")
	b.click(`//a[normalize-space()="Sign in to Globex"]`)
	b.fill("Email", email)
	b.fill("Password", password)
	b.click(button("Sign in"))
	b.waitText("No databases yet.")

	// Sessions: another sign-in is listed and can be ended.
	other := env.client("127.0.0.82")
	otherSession := other.login(email, password, "")
	b.click(`//nav//a[normalize-space()="Account"]`)
	b.waitText("this session")
	b.click(`//button[starts-with(@aria-label, "End the session of clouddb-e2e-test")]`)
	b.run(chromedp.WaitNotPresent(`//button[starts-with(@aria-label, "End the session of clouddb-e2e-test")]`, chromedp.BySearch))
	other.with(otherSession.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")

	// An API key is shown once, works, and is revoked.
	b.fill("Key name", "backup script")
	b.click(button("Create key"))
	key := b.text(`code.secret`)
	env.secret(key, "API key")
	other.with(key).do("GET", "/me", nil).expect(t, 200, "")
	b.check("account-api-key")
	b.click(button("I have stored it"))
	b.click(`//button[@aria-label="Revoke the key backup script"]`)
	b.waitText("No API keys.")
	other.with(key).do("GET", "/me", nil).expect(t, 401, "unauthenticated")

	// Two factors: the QR code and the key, a first code turns it on and shows recovery codes.
	b.click(button("Set up two-factor authentication"))
	b.run(chromedp.WaitVisible(`svg.qr path`, chromedp.ByQuery))
	secret := b.text(`code.secret`)
	env.secret(strings.ReplaceAll(secret, " ", ""), "TOTP secret")
	b.check("account-2fa-setup")
	b.fill("Code from the app", totpCode(t, env, secret))
	b.click(button("Turn on"))
	b.waitText("Two-factor authentication is on.")
	var codes int
	b.run(chromedp.Evaluate(`document.querySelectorAll("ul.codes li").length`, &codes))
	if codes != 10 {
		t.Errorf("%d recovery codes shown, want 10", codes)
	}
	b.check("account-2fa-codes")
	b.narrow("account-2fa-codes")
	b.click(button("I have stored them"))

	// Signing in now asks for a code (of a later time step: a code works once).
	signIn := func(password, screenshot string) {
		t.Helper()
		b.fill("Email", email)
		b.fill("Password", password)
		b.click(button("Sign in"))
		env.clock.Advance(30 * time.Second)
		b.fill("Authentication code", totpCode(t, env, secret))
		if screenshot != "" {
			b.check(screenshot)
		}
		b.click(button("Verify and sign in"))
		b.waitText("No databases yet.")
	}
	b.click(button("Sign out"))
	signIn(password, "login-2fa")

	// A change of password 6 minutes after the sign-in confirms the password (and a code) first,
	// then ends every session.
	env.clock.Advance(6 * time.Minute)
	b.click(`//nav//a[normalize-space()="Account"]`)
	newPassword := strongPassword()
	env.secret(newPassword, "password")
	b.fill("Current password", password)
	b.fill("New password", newPassword)
	b.click(button("Change password"))
	b.waitText("Confirm it is you")
	b.fill("Your password", password)
	b.fill("Authentication code", totpCode(t, env, secret))
	b.click(button("Confirm"))
	b.waitText("Your password is changed.")
	b.check("login-password-changed")

	// Forgot and reset through the mail's link; the next sign-in uses the new password.
	b.click(`//a[normalize-space()="Forgot your password?"]`)
	b.fill("Email", email)
	b.click(button("Send the link"))
	b.waitText("a mail with a link to choose a new password is on its way")
	b.open(mailLink(t, env.waitMail(email, "reset")))
	resetPassword := strongPassword()
	env.secret(resetPassword, "password")
	b.fill("New password", resetPassword)
	b.check("reset-password")
	b.click(button("Set password"))
	b.waitText("Your new password is set")
	b.click(`//a[normalize-space()="Sign in"]`)
	signIn(resetPassword, "")
	b.click(button("Sign out"))
	b.waitText("Forgot your password?") // signed out before the next page is opened

	// 429: the mails one address may ask for are spent; the page says how long to wait.
	for range 2 {
		other.do("POST", "/auth/password/forgot", map[string]any{"email": email}).expect(t, 202, "")
	}
	b.open("/forgot-password")
	b.fill("Email", email)
	b.click(button("Send the link"))
	// The account's wait: one mail every 5 minutes, less the time since the first of the three,
	// 30 s of the test's clock (signIn) and the real time of the steps since, which a loaded machine
	// stretches past 30 s: 5 minutes, or 4 (3, 2) then. The IP's limit would say 1 minute.
	var limited string
	b.run(chromedp.Text(`//body//*[contains(normalize-space(), "Try again in")][not(*[contains(normalize-space(), "Try again in")])]`,
		&limited, chromedp.BySearch))
	if !regexp.MustCompile(`Try again in [2-5] minutes\.$`).MatchString(strings.TrimSpace(limited)) {
		t.Errorf("the forgot page over the account's mail limit says %q, want to try again in 5 minutes (or a little less)", limited)
	}
	b.check("forgot-rate-limited")

	// Switching tenant with two factors on asks for a code as well as the password, in place.
	b.open("/login")
	signIn(resetPassword, "")
	env.clock.Advance(30 * time.Second)
	own := other.with(other.login2FA(email, resetPassword, totpCode(t, env, secret)).access).
		do("POST", "/tenants", map[string]any{"name": "Initech"}).expect(t, 201, "").str("id")
	b.open("/databases") // the console learns of the new tenant when it loads
	b.waitText("No databases yet.")
	b.choose(".tenant-switch select", own)
	b.waitText("Switch to Initech")
	b.fill("Your password", resetPassword)
	env.clock.Advance(30 * time.Second)
	b.fill("Authentication code", totpCode(t, env, secret))
	b.check("tenant-switch-2fa")
	b.click(button("Switch"))
	b.run(chromedp.Poll(fmt.Sprintf(`document.querySelector(".tenant-switch select").value === %q && !document.querySelector("dialog[open]")`, own), nil))
	b.click(button("Sign out"))
	b.waitText("Forgot your password?")

	// 423: five wrong passwords lock the account; the sign-in page says for how long.
	for range 5 {
		other.do("POST", "/auth/login", map[string]any{"email": admin.email, "password": "Wrong-pass-1!"})
	}
	b.open("/login")
	b.fill("Email", admin.email)
	b.fill("Password", admin.password)
	b.click(button("Sign in"))
	b.waitText("Try again in 15 minutes.")
	b.check("login-locked")
	b.narrow("login-locked")
}
