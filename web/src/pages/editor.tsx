// The SQL editor of one database: CodeMirror with MariaDB highlighting and completion of the
// database's own tables and columns, validation as you type, run with Ctrl/Cmd-Enter (the
// selection or the statement under the cursor), the results grid, the schema browser and the
// history of the person's queries. Several tabs, whose SQL is kept in localStorage (drafts only,
// never tokens), each with its last result.
import { autocompletion, closeBrackets, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history as cmHistory, historyKeymap, indentWithTab } from "@codemirror/commands";
import { MariaSQL, sql } from "@codemirror/lang-sql";
import { bracketMatching, HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { Diagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, Extension, Prec } from "@codemirror/state";
import { drawSelection, EditorView, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";
import { tags } from "@lezer/highlight";
import { memo } from "preact/compat";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, describeError } from "../api";
import { pageSize, Result, ResultView } from "../results";
import { statementAt } from "../sqlsplit";
import { can, session, useStore } from "../store";
import { Alert, Dialog, Link, useTitle } from "../ui";
import { ConnectionDialog, Database, StateBadge } from "./databases";

interface Column {
  name: string;
  type: string;
  nullable: boolean;
  key: string;
}
interface Table {
  name: string;
  type: string;
  rows_estimate: number;
  columns: Column[];
}
interface HistoryItem {
  query_id: string;
  database_id: string;
  sql: string;
  status: string;
  error?: string;
  execution_ms: number;
  row_count: number;
  executed_at: string;
}

// Colours are CSS variables (style.css), so the editor follows the system's light or dark setting
// as it changes, like the rest of the page.
const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: "var(--hl-keyword)" },
  { tag: [tags.string, tags.special(tags.string)], color: "var(--hl-string)" },
  { tag: [tags.number, tags.bool, tags.null], color: "var(--hl-number)" },
  { tag: tags.comment, color: "var(--muted)", fontStyle: "italic" },
  { tag: [tags.typeName, tags.standard(tags.name)], color: "var(--hl-type)" },
  { tag: tags.operator, color: "var(--hl-operator)" },
]);

const editorTheme = EditorView.theme({
  "&": { height: "100%", backgroundColor: "var(--surface)", color: "var(--text)" },
  ".cm-scroller": { fontFamily: "var(--mono)" },
  ".cm-gutters": { backgroundColor: "var(--bg)", color: "var(--muted)", borderRight: "1px solid var(--border)" },
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--active-line)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": { backgroundColor: "var(--selection) !important" },
  ".cm-cursor": { borderLeftColor: "var(--text)" },
  ".cm-tooltip": { backgroundColor: "var(--surface)", color: "var(--text)", border: "1px solid var(--border)" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--primary)", color: "var(--primary-text)" },
});

/** An editor tab: its SQL is the only thing the console keeps in localStorage. */
interface Tab {
  id: string;
  title: string;
  sql: string;
}
interface Drafts {
  tabs: Tab[];
  active: string;
}

/** The longest name of a tab, in characters. */
const maxTabTitle = 60;

// The drafts of each person's editor on each database: another person on this browser starts afresh.
const storageKey = (user: string, db: string) => `clouddb.editor.${user}.${db}`;

/** The saved tabs; an older console's single draft (plain text) becomes the first tab. */
function loadDrafts(key: string): Drafts {
  const raw = localStorage.getItem(key);
  const fresh = (sql: string): Drafts => ({ tabs: [{ id: "1", title: "Query 1", sql }], active: "1" });
  if (raw === null) return fresh("SELECT 1;");
  try {
    const d = JSON.parse(raw) as Drafts;
    if (Array.isArray(d.tabs) && d.tabs.length > 0 && d.tabs.every((t) => typeof t.id === "string" && typeof t.sql === "string")) {
      const tabs = d.tabs.map((t) => (typeof t.title === "string" && t.title.trim() ? t : { ...t, title: "Query " + t.id }));
      return { tabs, active: tabs.some((t) => t.id === d.active) ? d.active : tabs[0].id };
    }
  } catch {
    // not JSON: the single draft of before tabs
  }
  return fresh(raw);
}

/** What a tab last ran: its result or its error. */
interface Outcome {
  result?: Result;
  error?: unknown;
  /** Where the statement that ran starts in the tab's document, to place an error's position. */
  from: number;
}

export function Editor(props: { id: string }) {
  const me = useStore(session)!;
  const writer = can(me, "queries:write");
  const key = storageKey(me.user.id, props.id);
  const [db, setDb] = useState<Database | null>(null);
  const [archiving, setArchiving] = useState(false);
  const [tables, setTables] = useState<Table[]>([]);
  const [hist, setHist] = useState<HistoryItem[]>([]);
  const [panel, setPanel] = useState<"schema" | "history">("schema");
  const [drafts, setDrafts] = useState<Drafts>(() => loadDrafts(key));
  const [outcomes, setOutcomes] = useState<Record<string, Outcome>>({});
  const [running, setRunning] = useState(false);
  const [confirm, setConfirm] = useState<{ sql: string; from: number; error: ApiError } | null>(null);
  const [connecting, setConnecting] = useState(false);
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const schemaConf = useRef(new Compartment()).current;
  const schemaExt = useRef(sql({ dialect: MariaSQL, upperCaseKeywords: true }));
  const states = useRef(new Map<string, EditorState>());
  const extensions = useRef<Extension[]>([]);
  const draftsRef = useRef(drafts);
  draftsRef.current = drafts;
  useTitle(db ? db.name : "Database");

  const save = (d: Drafts) => {
    setDrafts(d);
    localStorage.setItem(key, JSON.stringify(d));
  };

  const loadHistory = () =>
    api<{ items: HistoryItem[] }>("GET", "/queries/history").then(
      (r) => setHist(r.items.filter((h) => h.database_id === props.id)),
      () => {},
    );
  const loadSchema = () => api<{ tables: Table[] }>("GET", `/databases/${props.id}/schema`).then((r) => setTables(r.tables ?? []), () => {});

  useEffect(() => {
    api<Database>("GET", "/databases/" + props.id).then(setDb, (e) => setOutcomes({ [drafts.active]: { error: e, from: 0 } }));
    api<{ limits: { result_archiving: boolean } }>("GET", "/tenant").then((t) => setArchiving(!!t.limits?.result_archiving), () => {});
    loadSchema();
    loadHistory();
  }, [props.id]);

  const run = async (text: string, from: number, confirmed = false) => {
    if (!text.trim()) return;
    const tab = draftsRef.current.active;
    setRunning(true);
    try {
      const body: Record<string, unknown> = { sql: text, page_size: pageSize };
      if (confirmed) body.confirm = true;
      const r = await api<Result>("POST", `/databases/${props.id}/query`, { body });
      setOutcomes((o) => ({ ...o, [tab]: { result: r, from } }));
      if (r.statement_type === "ddl") loadSchema();
    } catch (e) {
      if (e instanceof ApiError && e.code === "confirmation_required") {
        setConfirm({ sql: text, from, error: e });
      } else {
        setOutcomes((o) => ({ ...o, [tab]: { error: e, from } }));
        markError(e, from);
        // The database changed state since the page loaded (stopped, say): show its state now.
        if (e instanceof ApiError && e.status === 423) api<Database>("GET", "/databases/" + props.id).then(setDb, () => {});
      }
    } finally {
      setRunning(false);
      loadHistory();
    }
  };
  const runRef = useRef(run);
  runRef.current = run;

  /** Where in the document an error of the statement that started at from points, if it says. */
  const errorAt = (e: unknown, from: number): number | null => {
    const pos = e instanceof ApiError ? e.details?.position : null;
    const v = view.current;
    if (!v || !pos || typeof pos.offset !== "number") return null;
    return Math.min(from + pos.offset, v.state.doc.length);
  };
  const markError = (e: unknown, from: number) => {
    const v = view.current!;
    const at = errorAt(e, from);
    if (at === null) return;
    v.dispatch(setDiagnostics(v.state, [{ from: at, to: Math.min(at + 1, v.state.doc.length), severity: "error", message: e instanceof ApiError ? e.message : "" }]));
  };
  const jump = (at: number) => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ selection: { anchor: at }, effects: EditorView.scrollIntoView(at, { y: "center" }) });
    v.focus();
  };

  const runFromEditor = (v: EditorView) => {
    const sel = v.state.selection.main;
    const doc = v.state.doc.toString();
    const span = sel.empty ? statementAt(doc, sel.head) : { from: sel.from, to: sel.to };
    if (!span) return true;
    runRef.current(doc.slice(span.from, span.to), span.from);
    return true;
  };

  const stateFor = (tab: Tab) => {
    let st = states.current.get(tab.id);
    if (!st) {
      st = EditorState.create({ doc: tab.sql, extensions: extensions.current });
      states.current.set(tab.id, st);
    }
    return st;
  };

  useEffect(() => {
    let timer = 0;
    let seq = 0;
    const validate = (v: EditorView) => {
      clearTimeout(timer);
      timer = window.setTimeout(async () => {
        const doc = v.state.doc.toString();
        const mine = ++seq;
        if (!doc.trim()) return v.dispatch(setDiagnostics(v.state, []));
        const sel = v.state.selection.main;
        const span = statementAt(doc, sel.head);
        if (!span) return;
        const text = doc.slice(span.from, span.to);
        try {
          const r = await api<{ valid: boolean; errors: { message: string; position?: { offset: number } }[]; suggestions: { code: string; message: string }[] }>(
            "POST",
            `/databases/${props.id}/validate`,
            { body: { sql: text } },
          );
          if (mine !== seq || v.state.doc.toString() !== doc) return;
          const diags: Diagnostic[] = [];
          for (const e of r.errors ?? []) {
            const at = span.from + Math.min(e.position?.offset ?? 0, text.length);
            diags.push({ from: at, to: Math.min(at + 1, span.to), severity: "error", message: e.message });
          }
          for (const s of r.suggestions ?? []) {
            diags.push({ from: span.from, to: span.to, severity: "info", message: s.message, source: s.code });
          }
          v.dispatch(setDiagnostics(v.state, diags));
        } catch {
          // Validation is a help, not a gate: a refused or failed check marks nothing.
        }
      }, 400);
    };
    extensions.current = [
      lineNumbers(),
      cmHistory(),
      drawSelection(),
      highlightActiveLine(),
      bracketMatching(),
      closeBrackets(),
      // Suggestions open 20 ms after a keystroke (CodeMirror waits 100 by default): within the
      // 50 ms of issue 14 even for a schema of 500 tables (docs/PERFORMANCE.md).
      autocompletion({ activateOnTypingDelay: 20 }),
      lintGutter(),
      placeholder("Write SQL here. Ctrl+Enter runs the statement under the cursor or the selection."),
      schemaConf.of(schemaExt.current),
      syntaxHighlighting(highlight),
      Prec.highest(keymap.of([{ key: "Mod-Enter", run: runFromEditor }])),
      keymap.of([...defaultKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
      // An explicit tabindex tells checkers what the browser already knows: the editable content
      // is focusable, so the scrolling area around it is reachable by keyboard.
      EditorView.contentAttributes.of({ "aria-label": "SQL editor", tabindex: "0" }),
      EditorView.updateListener.of((u) => {
        if (!u.docChanged) return;
        const d = draftsRef.current;
        save({ ...d, tabs: d.tabs.map((t) => (t.id === d.active ? { ...t, sql: u.state.doc.toString() } : t)) });
        validate(u.view);
      }),
      editorTheme,
    ];
    states.current.clear();
    const d = draftsRef.current;
    const v = new EditorView({ parent: host.current!, state: stateFor(d.tabs.find((t) => t.id === d.active)!) });
    view.current = v;
    return () => {
      clearTimeout(timer);
      v.destroy();
    };
  }, [props.id, me.user.id]);

  // Completion knows the database's tables and their columns.
  useEffect(() => {
    const schema: Record<string, string[]> = {};
    for (const t of tables) schema[t.name] = t.columns.map((c) => c.name);
    schemaExt.current = sql({ dialect: MariaSQL, upperCaseKeywords: true, schema });
    view.current?.dispatch({ effects: schemaConf.reconfigure(schemaExt.current) });
  }, [tables]);

  /** Shows another tab in the one editor, keeping each tab's undo history. */
  const switchTo = (d: Drafts, id: string) => {
    const v = view.current!;
    states.current.set(draftsRef.current.active, v.state);
    const tab = d.tabs.find((t) => t.id === id)!;
    save({ ...d, active: id });
    v.setState(stateFor(tab));
    v.dispatch({ effects: schemaConf.reconfigure(schemaExt.current) });
    v.focus();
  };
  const newTab = () => {
    const n = Math.max(0, ...drafts.tabs.map((t) => Number(t.id) || 0)) + 1;
    switchTo({ ...drafts, tabs: [...drafts.tabs, { id: String(n), title: "Query " + n, sql: "" }] }, String(n));
  };
  const closeTab = (id: string) => {
    const i = drafts.tabs.findIndex((t) => t.id === id);
    const rest = drafts.tabs.filter((t) => t.id !== id);
    states.current.delete(id);
    setOutcomes(({ [id]: _, ...o }) => o);
    if (rest.length === 0) {
      const tab = { id: "1", title: "Query 1", sql: "" };
      states.current.clear();
      save({ tabs: [tab], active: "1" });
      view.current!.setState(stateFor(tab));
      return;
    }
    if (id !== drafts.active) return save({ ...drafts, tabs: rest });
    const next = rest[Math.min(i, rest.length - 1)];
    switchTo({ tabs: rest, active: id }, next.id);
    states.current.delete(id);
  };

  /** A tab's name is the person's to choose (double-click, F2 or the pencil); it is kept with the
   * drafts. Escape or an empty name keeps the old one. */
  const [renaming, setRenaming] = useState<string | null>(null);
  const renameCancelled = useRef(false);
  const startRename = (id: string) => {
    renameCancelled.current = false;
    setRenaming(id);
  };
  const endRename = (id: string, value: string | null) => {
    if (renameCancelled.current) return;
    renameCancelled.current = true; // the blur of the input as it goes must not end it twice
    setRenaming(null);
    const title = (value ?? "").trim().slice(0, maxTabTitle);
    const d = draftsRef.current;
    if (title) save({ ...d, tabs: d.tabs.map((t) => (t.id === id ? { ...t, title } : t)) });
    requestAnimationFrame(() => document.getElementById("editor-tab-" + id)?.focus());
  };

  // Stable, so that the schema tree (memo) is not drawn again when a result comes in.
  const insert = useCallback((text: string) => {
    const v = view.current;
    if (!v) return;
    const sel = v.state.selection.main;
    v.dispatch({ changes: { from: sel.from, to: sel.to, insert: text }, selection: { anchor: sel.from + text.length } });
    v.focus();
  }, []);
  const load = (text: string) => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
    v.focus();
  };

  const start = async () => {
    const tab = drafts.active;
    try {
      setDb(await api<Database>("POST", `/databases/${props.id}/start`));
      setOutcomes(({ [tab]: _, ...o }) => o);
    } catch (e) {
      setOutcomes((o) => ({ ...o, [tab]: { error: e, from: 0 } }));
    }
  };
  const outcome = outcomes[drafts.active];
  const errorPos = outcome?.error !== undefined ? errorAt(outcome.error, outcome.from) : null;
  return (
    <div class="editor-page">
      <div class="editor-head">
        <h1>
          <Link href="/databases">Databases</Link> <span aria-hidden="true">/</span> {db?.name ?? "…"}
        </h1>
        {db && <StateBadge state={db.state} />}
        <div class="spacer" />
        {db && (db.state === "running" || db.state === "stopped") && (
          <button type="button" onClick={() => setConnecting(true)}>
            Connect
          </button>
        )}
        <button class="primary" type="button" disabled={running} onClick={() => view.current && runFromEditor(view.current)}>
          {running ? "Running…" : "Run"} <kbd>{navigator.platform.startsWith("Mac") ? "⌘" : "Ctrl"}+Enter</kbd>
        </button>
      </div>
      {!writer && (
        <Alert kind="info">
          Read-only: as a {me.tenant!.role} you can run SELECT, SHOW, DESCRIBE and EXPLAIN here; statements that change data or structure are refused.
        </Alert>
      )}
      <div class="workspace">
        <aside class="side" aria-label="Schema and history">
          <div role="tablist" class="tabs">
            <button role="tab" type="button" id="tab-schema" aria-controls="panel-schema" aria-selected={panel === "schema"} onClick={() => setPanel("schema")}>
              Schema
            </button>
            <button role="tab" type="button" id="tab-history" aria-controls="panel-history" aria-selected={panel === "history"} onClick={() => setPanel("history")}>
              History
            </button>
          </div>
          {panel === "schema" ? (
            <div role="tabpanel" id="panel-schema" aria-labelledby="tab-schema" class="panel">
              {tables.length === 0 && <p class="muted">No tables yet.</p>}
              <SchemaTree tables={tables} insert={insert} />
            </div>
          ) : (
            <div role="tabpanel" id="panel-history" aria-labelledby="tab-history" class="panel">
              {hist.length === 0 && <p class="muted">No queries yet.</p>}
              <ol class="history">
                {hist.map((h) => (
                  <li key={h.query_id} class={h.status !== "succeeded" ? "failed" : undefined}>
                    <button type="button" class="linklike" onClick={() => load(h.sql)} title="Load into the editor">
                      <code>{h.sql.length > 120 ? h.sql.slice(0, 120) + "…" : h.sql}</code>
                    </button>
                    <div class="muted">
                      {h.status === "succeeded" ? `${h.row_count} rows · ${h.execution_ms} ms` : h.status + (h.error ? ": " + h.error : "")} ·{" "}
                      <time dateTime={h.executed_at}>{new Date(h.executed_at).toLocaleTimeString()}</time>
                    </div>
                  </li>
                ))}
              </ol>
            </div>
          )}
        </aside>
        <div class="main-col">
          <nav class="editor-tabs" aria-label="Editor tabs">
            <ul>
              {drafts.tabs.map((t) => (
                <li key={t.id} class={t.id === drafts.active ? "active" : undefined}>
                  {renaming === t.id ? (
                    <input
                      class="tab-name"
                      aria-label={`Name of the tab ${t.title}`}
                      value={t.title}
                      maxLength={maxTabTitle}
                      size={Math.max(8, t.title.length)}
                      ref={(el) => {
                        if (el && el !== document.activeElement) {
                          el.focus();
                          el.select();
                        }
                      }}
                      onKeyDown={(e) => {
                        if (e.key === "Enter") endRename(t.id, e.currentTarget.value);
                        else if (e.key === "Escape") endRename(t.id, null);
                      }}
                      onBlur={(e) => endRename(t.id, e.currentTarget.value)}
                    />
                  ) : (
                    <button
                      type="button"
                      class="tab"
                      id={"editor-tab-" + t.id}
                      title="Double-click or F2 to rename"
                      aria-current={t.id === drafts.active ? "true" : undefined}
                      onClick={() => t.id !== drafts.active && switchTo(drafts, t.id)}
                      onDblClick={() => startRename(t.id)}
                      onKeyDown={(e) => e.key === "F2" && startRename(t.id)}
                    >
                      {t.title}
                    </button>
                  )}
                  {t.id === drafts.active && renaming !== t.id && (
                    <button type="button" class="rename" aria-label={`Rename ${t.title}`} title={`Rename ${t.title}`} onClick={() => startRename(t.id)}>
                      ✎
                    </button>
                  )}
                  <button type="button" class="close" aria-label={`Close ${t.title}`} title={`Close ${t.title}`} onClick={() => closeTab(t.id)}>
                    ×
                  </button>
                </li>
              ))}
            </ul>
            <button type="button" class="new-tab" aria-label="New editor tab" title="New editor tab" onClick={newTab}>
              +
            </button>
          </nav>
          <div class="cm-host" ref={host} />
          <section class="results" aria-label="Results" aria-live="polite">
            {outcome?.error !== undefined && (
              <QueryError
                error={outcome.error}
                onJump={errorPos === null ? undefined : () => jump(errorPos)}
                onStart={writer && outcome.error instanceof ApiError && outcome.error.code === "database_stopped" ? start : undefined}
              />
            )}
            {outcome?.result && <ResultView result={outcome.result} archiving={archiving} />}
          </section>
        </div>
      </div>
      {connecting && db && <ConnectionDialog db={db} onClose={() => setConnecting(false)} />}
      {confirm && (
        <Dialog title="Confirm this statement" onClose={() => setConfirm(null)}>
          <p>{confirmReasons[confirm.error.details?.reason] ?? confirm.error.message}</p>
          {confirm.error.details?.estimated_rows !== undefined && <p>About {confirm.error.details.estimated_rows} rows are affected.</p>}
          <pre class="sql">{confirm.sql}</pre>
          <div class="buttons">
            <button type="button" onClick={() => setConfirm(null)}>
              Cancel
            </button>
            <button
              type="button"
              class="danger"
              onClick={() => {
                const c = confirm;
                setConfirm(null);
                run(c.sql, c.from, true);
              }}
            >
              Run it
            </button>
          </div>
        </Dialog>
      )}
    </div>
  );
}

/** The schema browser's tables; drawn again only when the tables change (a schema may hold
 * hundreds, and a result coming in should not make the page diff them). */
const SchemaTree = memo(function SchemaTree(props: { tables: Table[]; insert: (text: string) => void }) {
  return (
    <ul class="tree">
      {props.tables.map((t) => (
        <TableNode key={t.name} table={t} insert={props.insert} />
      ))}
    </ul>
  );
});

/** A table of the schema browser: its name inserts it, the arrow shows its columns. */
function TableNode(props: { table: Table; insert: (text: string) => void }) {
  const t = props.table;
  const [open, setOpen] = useState(false);
  return (
    <li>
      <button type="button" class="twisty" aria-expanded={open} aria-label={`Columns of ${t.name}`} onClick={() => setOpen(!open)}>
        {open ? "▾" : "▸"}
      </button>
      <button type="button" class="linklike" onClick={() => props.insert(t.name)} title="Insert the name into the editor">
        {t.name}
      </button>{" "}
      <span class="muted">~{t.rows_estimate} rows</span>
      {open && (
        <ul>
          {t.columns.map((c) => (
            <li key={c.name}>
              <button type="button" class="linklike" onClick={() => props.insert(c.name)}>
                {c.name}
              </button>{" "}
              <span class="muted">
                {c.type}
                {c.key ? " · " + c.key : ""}
                {c.nullable ? "" : " · not null"}
              </span>
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

// What a statement that needs confirming will do, by the API's details.reason.
const confirmReasons: Record<string, string> = {
  drop: "This statement drops or empties a table: what it holds is gone for good.",
  no_where: "This statement has no WHERE clause: it changes every row of the table.",
  large_write: "This statement changes many rows.",
};

/** A failed statement in words: what the server said, what it means, a hint, and a jump to the
 * position it names. */
function QueryError(props: { error: unknown; onJump?: () => void; onStart?: () => void }) {
  const e = props.error;
  const d = e instanceof ApiError ? e.details : {};
  return (
    <Alert>
      <strong>{describeError(e)}</strong>
      {d?.explanation && <div>{d.explanation}</div>}
      {d?.position && (
        <div>
          At line {d.position.line}, column {d.position.column}.{" "}
          {props.onJump && (
            <button type="button" class="linklike" onClick={props.onJump}>
              Go to the error
            </button>
          )}
        </div>
      )}
      {d?.hint && <div class="hint">{d.hint}</div>}
      {d?.reason && <div class="hint">{d.reason}</div>}
      {props.onStart && (
        <div>
          <button type="button" onClick={props.onStart}>
            Start the database
          </button>
        </div>
      )}
    </Alert>
  );
}
