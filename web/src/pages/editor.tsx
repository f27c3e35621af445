// The SQL editor of one database: CodeMirror with MariaDB highlighting and completion of the
// database's own tables and columns, validation as you type, run with Ctrl/Cmd-Enter (the
// selection or the statement under the cursor), the results grid, the schema browser and the
// history of the person's queries.
import { autocompletion, closeBrackets, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history as cmHistory, historyKeymap, indentWithTab } from "@codemirror/commands";
import { MariaSQL, sql } from "@codemirror/lang-sql";
import { bracketMatching, HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { Diagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { drawSelection, EditorView, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";
import { tags } from "@lezer/highlight";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, describeError } from "../api";
import { statementAt } from "../sqlsplit";
import { can, session, useStore } from "../store";
import { Alert, Dialog, Link, useTitle } from "../ui";
import { Database, StateBadge } from "./databases";

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
export interface Result {
  query_id: string;
  statement_type: string;
  columns: { name: string; type: string }[] | null;
  rows: unknown[][] | null;
  row_count: number;
  affected_rows: number;
  truncated: boolean;
  execution_ms: number;
  page?: { offset: number; limit: number; total: number };
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

// The draft of each person's editor on each database: another person on this browser starts afresh.
const storageKey = (user: string, db: string) => `clouddb.editor.${user}.${db}`;

export function Editor(props: { id: string }) {
  const me = useStore(session)!;
  const writer = can(me, "queries:write");
  const [db, setDb] = useState<Database | null>(null);
  const [tables, setTables] = useState<Table[]>([]);
  const [hist, setHist] = useState<HistoryItem[]>([]);
  const [panel, setPanel] = useState<"schema" | "history">("schema");
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const [confirm, setConfirm] = useState<{ sql: string; error: ApiError } | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const schemaConf = useRef(new Compartment()).current;
  useTitle(db ? db.name : "Database");

  const loadHistory = () =>
    api<{ items: HistoryItem[] }>("GET", "/queries/history").then(
      (r) => setHist(r.items.filter((h) => h.database_id === props.id)),
      () => {},
    );

  useEffect(() => {
    api<Database>("GET", "/databases/" + props.id).then(setDb, setError);
    api<{ tables: Table[] }>("GET", `/databases/${props.id}/schema`).then((r) => setTables(r.tables ?? []), () => {});
    loadHistory();
  }, [props.id]);

  const run = async (text: string, confirmed = false) => {
    if (!text.trim()) return;
    setRunning(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { sql: text };
      if (confirmed) body.confirm = true;
      const r = await api<Result>("POST", `/databases/${props.id}/query`, { body });
      setResult(r);
      if (r.statement_type === "ddl") {
        api<{ tables: Table[] }>("GET", `/databases/${props.id}/schema`).then((s) => setTables(s.tables ?? []), () => {});
      }
    } catch (e) {
      if (e instanceof ApiError && e.code === "confirmation_required") {
        setConfirm({ sql: text, error: e });
      } else {
        setError(e);
        markError(e, text);
      }
    } finally {
      setRunning(false);
      loadHistory();
    }
  };
  const runRef = useRef(run);
  runRef.current = run;
  const lastRun = useRef({ from: 0 });

  // The position of a failed statement, relative to what was sent, marked in the document.
  const markError = (e: unknown, text: string) => {
    const v = view.current;
    const pos = e instanceof ApiError ? e.details?.position : null;
    if (!v || !pos || typeof pos.offset !== "number") return;
    const doc = v.state.doc.toString();
    const base = doc.indexOf(text, lastRun.current.from) >= 0 ? doc.indexOf(text, lastRun.current.from) : 0;
    const at = Math.min(base + pos.offset, doc.length);
    v.dispatch(setDiagnostics(v.state, [{ from: at, to: Math.min(at + 1, doc.length), severity: "error", message: e instanceof ApiError ? e.message : "" }]));
  };

  const runFromEditor = (v: EditorView) => {
    const sel = v.state.selection.main;
    const doc = v.state.doc.toString();
    const span = sel.empty ? statementAt(doc, sel.head) : { from: sel.from, to: sel.to };
    if (!span) return true;
    lastRun.current = span;
    runRef.current(doc.slice(span.from, span.to));
    return true;
  };

  useEffect(() => {
    const saved = localStorage.getItem(storageKey(me.user.id, props.id));
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
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: saved ?? "SELECT 1;",
        extensions: [
          lineNumbers(),
          cmHistory(),
          drawSelection(),
          highlightActiveLine(),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          lintGutter(),
          placeholder("Write SQL here. Ctrl+Enter runs the statement under the cursor or the selection."),
          schemaConf.of(sql({ dialect: MariaSQL, upperCaseKeywords: true })),
          syntaxHighlighting(highlight),
          Prec.highest(keymap.of([{ key: "Mod-Enter", run: runFromEditor }])),
          keymap.of([...defaultKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
          EditorView.contentAttributes.of({ "aria-label": "SQL editor" }),
          EditorView.updateListener.of((u) => {
            if (!u.docChanged) return;
            localStorage.setItem(storageKey(me.user.id, props.id), u.state.doc.toString());
            validate(u.view);
          }),
          editorTheme,
        ],
      }),
    });
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
    view.current?.dispatch({ effects: schemaConf.reconfigure(sql({ dialect: MariaSQL, upperCaseKeywords: true, schema })) });
  }, [tables]);

  const insert = (text: string) => {
    const v = view.current;
    if (!v) return;
    const sel = v.state.selection.main;
    v.dispatch({ changes: { from: sel.from, to: sel.to, insert: text }, selection: { anchor: sel.from + text.length } });
    v.focus();
  };
  const load = (text: string) => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
    v.focus();
  };

  return (
    <div class="editor-page">
      <div class="editor-head">
        <h1>
          <Link href="/databases">Databases</Link> <span aria-hidden="true">/</span> {db?.name ?? "…"}
        </h1>
        {db && <StateBadge state={db.state} />}
        <div class="spacer" />
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
              <ul class="tree">
                {tables.map((t) => (
                  <TableNode key={t.name} table={t} insert={insert} />
                ))}
              </ul>
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
          <div class="cm-host" ref={host} />
          <section class="results" aria-label="Results" aria-live="polite">
            {error !== null && <QueryError error={error} />}
            {result && error === null && <ResultView result={result} />}
          </section>
        </div>
      </div>
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
                const s = confirm.sql;
                setConfirm(null);
                run(s, true);
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

function QueryError(props: { error: unknown }) {
  const e = props.error;
  const d = e instanceof ApiError ? e.details : {};
  return (
    <Alert>
      <strong>{describeError(e)}</strong>
      {d?.position && (
        <div>
          At line {d.position.line}, column {d.position.column}.
        </div>
      )}
      {d?.hint && <div class="hint">{d.hint}</div>}
      {d?.reason && <div class="hint">{d.reason}</div>}
    </Alert>
  );
}

const numericType = /INT|DECIMAL|FLOAT|DOUBLE|YEAR|BIT/;
const binaryType = /BLOB|BINARY|GEOMETRY|VECTOR/;

/** One value as text: NULL apart from the string "NULL", binary marked, long values cut. */
function Cell(props: { value: unknown; type: string }) {
  const v = props.value;
  if (v === null) return <td class="null">NULL</td>;
  const numeric = typeof v === "number" || (numericType.test(props.type) && !props.type.includes("BLOB"));
  let text = typeof v === "string" ? v : JSON.stringify(v);
  const binary = binaryType.test(props.type) && !props.type.includes("TEXT");
  if (binary) text = "base64:" + text;
  const long = text.length > 200;
  return (
    <td class={(numeric ? "num" : "") + (binary ? " binary" : "")} title={long ? text.slice(0, 4000) : undefined}>
      {long ? text.slice(0, 200) + "…" : text}
    </td>
  );
}

function ResultView(props: { result: Result }) {
  const first = props.result;
  const [page, setPage] = useState<Result>(first);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setPage(first), [first]);
  const cols = first.columns;
  if (!cols || cols.length === 0) {
    return (
      <p class="stats">
        {first.affected_rows === 1 ? "1 row" : `${first.affected_rows} rows`} affected · {first.execution_ms} ms
      </p>
    );
  }
  const p = page.page ?? { offset: 0, limit: page.rows?.length ?? 0, total: first.row_count };
  const go = async (offset: number) => {
    try {
      const r = await api<Result>("GET", `/queries/${first.query_id}/results?offset=${offset}&limit=${p.limit}`);
      setPage({ ...first, rows: r.rows, page: r.page });
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <p class="stats">
        {first.row_count === 1 ? "1 row" : `${first.row_count} rows`}{first.truncated ? " (cut at the row limit)" : ""} · {first.execution_ms} ms
        {p.total > p.limit && (
          <span class="pager">
            {" "}
            · rows {p.offset + 1}–{Math.min(p.offset + p.limit, p.total)} of {p.total}{" "}
            <button type="button" disabled={p.offset === 0} onClick={() => go(Math.max(0, p.offset - p.limit))}>
              Previous
            </button>{" "}
            <button type="button" disabled={p.offset + p.limit >= p.total} onClick={() => go(p.offset + p.limit)}>
              Next
            </button>
          </span>
        )}
      </p>
      {error !== null && <Alert>{describeError(error)}</Alert>}
      <div class="grid-wrap" tabIndex={0} role="region" aria-label="Result rows">
        <table class="grid">
          <thead>
            <tr>
              <th scope="col" class="rownum">
                #
              </th>
              {cols.map((c, i) => (
                <th scope="col" key={i} title={c.type}>
                  {c.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {(page.rows ?? []).map((row, r) => (
              <tr key={p.offset + r}>
                <th scope="row" class="rownum">
                  {p.offset + r + 1}
                </th>
                {row.map((v, i) => (
                  <Cell key={i} value={v} type={cols[i]?.type ?? ""} />
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
