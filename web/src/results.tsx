// A statement's result: statistics, pages, export, copy, archive and the grid. The grid draws only
// the rows in view (a page holds up to 1,000), at a fixed row height and with column widths fixed
// from the page's values, so scrolling never lays the table out again. Values are text: NULL
// apart from the string "NULL", numbers aligned, binary as bytes, long values cut with a button
// that shows them whole.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, describeError, download } from "./api";
import { Alert, CopyButton, copyText, Dialog, plural } from "./ui";

export interface Column {
  name: string;
  type: string;
}

export interface Result {
  query_id: string;
  statement_type: string;
  columns: Column[] | null;
  rows: unknown[][] | null;
  row_count: number;
  affected_rows: number;
  truncated: boolean;
  execution_ms: number;
  page?: { offset: number; limit: number; total: number };
}

/** Rows a run asks for inline and a page holds: the grid is built to stay smooth at this many. */
export const pageSize = 1000;

const numericType = /INT|DECIMAL|FLOAT|DOUBLE|YEAR/;
const binaryType = /BLOB|BINARY|GEOMETRY|^BIT$/;
/** Characters of a value a cell shows; the rest is a click (or Enter) away. */
const cellChars = 120;
/** Height of a row in pixels: style.css sets the same (table.grid td). */
const rowHeight = 26;
/** Rows drawn above and below the visible ones, so that a fast scroll does not show blanks. */
const overscan = 12;

type Kind = "null" | "num" | "binary" | "text";

function kindOf(v: unknown, type: string): Kind {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string" && binaryType.test(type) && !type.includes("TEXT")) return "binary";
  if (typeof v === "number" || numericType.test(type)) return "num";
  return "text";
}

function bytesOf(base64: string): Uint8Array {
  try {
    const s = atob(base64);
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
    return b;
  } catch {
    return new Uint8Array();
  }
}

function hex(b: Uint8Array, max = b.length): string {
  let s = "";
  for (let i = 0; i < Math.min(max, b.length); i++) s += b[i].toString(16).padStart(2, "0").toUpperCase();
  return s;
}

/** The whole text of a value, as the full-value dialog and the clipboard show it. */
export function fullText(v: unknown, type: string): string {
  const kind = kindOf(v, type);
  if (kind === "null") return "NULL";
  if (kind === "binary") return "0x" + hex(bytesOf(v as string));
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** What a cell shows: one line, cut at cellChars; binary as its size and first bytes in hex. */
function shown(v: unknown, kind: Kind): { text: string; cut: boolean } {
  if (kind === "null") return { text: "NULL", cut: false };
  if (kind === "binary") {
    const b = bytesOf(v as string);
    return { text: `0x${hex(b, 16)}${b.length > 16 ? "…" : ""} (${plural(b.length, "byte")})`, cut: b.length > 16 };
  }
  const s = typeof v === "string" ? v : JSON.stringify(v);
  const line = s.length > cellChars || /[\r\n\t]/.test(s);
  // Line breaks and tabs would change the row's height: a visible mark stands for them.
  const text = s.slice(0, cellChars).replace(/\r?\n/g, "↵").replace(/\t/g, "⇥");
  return { text: s.length > cellChars ? text + "…" : text, cut: line };
}

/** Column widths in ch from the header and the page's values, bounded, fixed for the page. */
function widths(cols: Column[], rows: unknown[][]): number[] {
  return cols.map((c, i) => {
    let w = c.name.length + 2;
    for (let r = 0; r < rows.length && w < 40; r++) {
      const v = rows[r][i];
      const k = kindOf(v, c.type);
      w = Math.max(w, k === "binary" ? 30 : shown(v, k).text.length + (k === "text" && shown(v, k).cut ? 3 : 0));
    }
    return Math.min(40, Math.max(5, w)) + 2;
  });
}

function tsv(cols: Column[], rows: unknown[][]): string {
  const cell = (v: unknown, type: string) => (v === null ? "NULL" : fullText(v, type).replace(/[\t\r\n]+/g, " "));
  return [cols.map((c) => c.name).join("\t"), ...rows.map((r) => r.map((v, i) => cell(v, cols[i].type)).join("\t"))].join("\n");
}

export function ResultView(props: { result: Result; archiving?: boolean }) {
  const first = props.result;
  const [page, setPage] = useState<Result>(first);
  const [error, setError] = useState<unknown>(null);
  const [archived, setArchived] = useState(false);
  useEffect(() => {
    setPage(first);
    setError(null);
    setArchived(false);
  }, [first]);
  const cols = first.columns;
  if (!cols || cols.length === 0) {
    return (
      <p class="stats">
        {plural(first.affected_rows, "row")} affected · {first.execution_ms} ms
      </p>
    );
  }
  const rows = page.rows ?? [];
  const p = page.page ?? { offset: 0, limit: rows.length, total: first.row_count };
  const go = async (offset: number) => {
    try {
      const r = await api<Result>("GET", `/queries/${first.query_id}/results?offset=${offset}&limit=${pageSize}`);
      setPage({ ...first, rows: r.rows, page: r.page });
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const act = (f: () => Promise<unknown>) => () => f().catch(setError);
  return (
    <>
      <div class="result-bar">
        <p class="stats">
          {plural(first.row_count, "row")}
          {first.truncated ? " (cut at the row limit)" : ""} · {first.execution_ms} ms
          {p.total > p.limit && (
            <span class="pager">
              {" "}
              · rows {p.offset + 1}–{Math.min(p.offset + p.limit, p.total)} of {p.total}{" "}
              <button type="button" disabled={p.offset === 0} onClick={() => go(Math.max(0, p.offset - pageSize))}>
                Previous
              </button>{" "}
              <button type="button" disabled={p.offset + p.limit >= p.total} onClick={() => go(p.offset + p.limit)}>
                Next
              </button>
            </span>
          )}
        </p>
        <div class="spacer" />
        <div class="result-actions" role="group" aria-label="Result actions">
          <span class="muted">Export</span>
          {(["csv", "json", "sql"] as const).map((f) => (
            <button key={f} type="button" aria-label={`Export as ${f.toUpperCase()}`} onClick={act(() => download(`/queries/${first.query_id}/export?format=${f}`, `query.${f}`))}>
              {f.toUpperCase()}
            </button>
          ))}
          <CopyButton text={() => tsv(cols, rows)} label="Copy these rows as tab-separated text">
            Copy
          </CopyButton>
          {props.archiving && (
            <button
              type="button"
              disabled={archived}
              onClick={act(async () => {
                await api("POST", `/queries/${first.query_id}/archive`);
                setArchived(true);
              })}
            >
              {archived ? "Archived" : "Archive"}
            </button>
          )}
        </div>
      </div>
      {error !== null && <Alert>{describeError(error)}</Alert>}
      <Grid cols={cols} rows={rows} offset={p.offset} total={p.total} />
    </>
  );
}

/** The virtualized grid of one page of rows. */
function Grid(props: { cols: Column[]; rows: unknown[][]; offset: number; total: number }) {
  const { cols, rows, offset } = props;
  const wrap = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const [whole, setWhole] = useState<{ col: Column; row: number; value: unknown } | null>(null);
  const w = useMemo(() => widths(cols, rows), [cols, rows]);
  useEffect(() => {
    const el = wrap.current!;
    el.scrollTop = 0;
    let frame = 0;
    const measure = () => {
      frame = 0;
      setView({ top: el.scrollTop, height: el.clientHeight });
    };
    const onScroll = () => {
      if (!frame) frame = requestAnimationFrame(measure);
    };
    measure();
    el.addEventListener("scroll", onScroll, { passive: true });
    const ro = new ResizeObserver(onScroll);
    ro.observe(el);
    return () => {
      el.removeEventListener("scroll", onScroll);
      ro.disconnect();
      cancelAnimationFrame(frame);
    };
  }, [rows]);
  const start = Math.max(0, Math.floor(view.top / rowHeight) - overscan);
  const end = Math.min(rows.length, Math.ceil((view.top + view.height) / rowHeight) + overscan);
  const total = w.reduce((a, b) => a + b, 0) + 6;
  return (
    <div class="grid-wrap" ref={wrap} tabIndex={0} role="region" aria-label="Result rows">
      <table class="grid" style={{ width: `calc(${total}ch + ${cols.length + 1} * 1.2rem)` }} aria-rowcount={props.total + 1}>
        <colgroup>
          <col style={{ width: "calc(6ch + 1.2rem)" }} />
          {w.map((x, i) => (
            <col key={i} style={{ width: `calc(${x}ch + 1.2rem)` }} />
          ))}
        </colgroup>
        <thead>
          <tr aria-rowindex={1}>
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
          {start > 0 && <tr class="pad" aria-hidden="true" style={{ height: start * rowHeight + "px" }} />}
          {rows.slice(start, end).map((row, k) => {
            const r = start + k;
            return (
              <tr key={offset + r} aria-rowindex={offset + r + 2}>
                <th scope="row" class="rownum">
                  {offset + r + 1}
                </th>
                {row.map((v, i) => {
                  const kind = kindOf(v, cols[i]?.type ?? "");
                  const { text, cut } = shown(v, kind);
                  return (
                    <td key={i} class={kind === "text" ? undefined : kind}>
                      {text}
                      {cut && (
                        <button
                          type="button"
                          class="more"
                          aria-label={`Show the whole value of ${cols[i].name} in row ${offset + r + 1}`}
                          onClick={() => setWhole({ col: cols[i], row: offset + r + 1, value: v })}
                        >
                          ⋯
                        </button>
                      )}
                    </td>
                  );
                })}
              </tr>
            );
          })}
          {end < rows.length && <tr class="pad" aria-hidden="true" style={{ height: (rows.length - end) * rowHeight + "px" }} />}
        </tbody>
      </table>
      {whole && <WholeValue {...whole} onClose={() => setWhole(null)} />}
    </div>
  );
}

/** A value in full: text as it is (line breaks kept), binary as hex and base64. */
function WholeValue(props: { col: Column; row: number; value: unknown; onClose: () => void }) {
  const binary = kindOf(props.value, props.col.type) === "binary";
  const text = fullText(props.value, props.col.type);
  return (
    <Dialog title={`${props.col.name}, row ${props.row}`} onClose={props.onClose} wide>
      <p class="muted">
        {props.col.type} · {binary ? plural(bytesOf(props.value as string).length, "byte") : plural(text.length, "character")}
      </p>
      <pre class="whole" tabIndex={0} aria-label="The whole value">
        {text}
      </pre>
      {binary && (
        <p class="hint">
          Base64: <code>{String(props.value).slice(0, 2000)}</code>
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={() => copyText(text).then(props.onClose, () => {})}>
          Copy and close
        </button>
        <button type="button" class="primary" onClick={props.onClose} autoFocus>
          Close
        </button>
      </div>
    </Dialog>
  );
}
