/** A statement of a script: its text and where it sits in the document. */
export interface Span {
  from: number;
  to: number;
}

/**
 * Splits SQL at the semicolons that end statements, skipping those in quotes ('…', "…", `…`) and
 * comments (-- …, # …, /* … *\/), the way the mysql client does for the usual cases.
 */
export function statements(sql: string): Span[] {
  const spans: Span[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === "`") {
      i++;
      while (i < sql.length && sql[i] !== c) i += sql[i] === "\\" && c !== "`" ? 2 : 1;
      i++;
    } else if ((c === "-" && sql[i + 1] === "-" && /\s/.test(sql[i + 2] ?? " ")) || c === "#") {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === ";") {
      spans.push({ from: start, to: i });
      start = ++i;
    } else {
      i++;
    }
  }
  spans.push({ from: start, to: sql.length });
  return spans.filter((s) => sql.slice(s.from, s.to).trim() !== "");
}

/** The statement the cursor is in, or the last one before it (the cursor after its semicolon). */
export function statementAt(sql: string, pos: number): Span | null {
  const all = statements(sql);
  let best: Span | null = null;
  for (const s of all) {
    if (s.from <= pos && pos <= s.to + 1) return trim(sql, s);
    if (s.to < pos) best = s;
  }
  return best ? trim(sql, best) : all[0] ? trim(sql, all[0]) : null;
}

function trim(sql: string, s: Span): Span {
  let { from, to } = s;
  while (from < to && /\s/.test(sql[from])) from++;
  while (to > from && /\s/.test(sql[to - 1])) to--;
  return { from, to };
}
