import type { AnchorHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { navigate } from "./store";

export function Link(props: AnchorHTMLAttributes & { href: string }) {
  const { href, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    />
  );
}

let fieldIds = 0;

/** A labelled input: the label names it for assistive technology, the hint describes it. */
export function Field(props: {
  label: string;
  hint?: string;
  type?: "text" | "email" | "password" | "date";
  value: string;
  onInput: (v: string) => void;
  autoComplete?: string;
  required?: boolean;
  autoFocus?: boolean;
  inputMode?: string;
  pattern?: string;
}) {
  const id = useRef("f" + ++fieldIds).current;
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (props.autoFocus) input.current?.focus();
  }, []);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        ref={input}
        id={id}
        type={(props.type ?? "text") as "text"}
        value={props.value}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
        autoComplete={props.autoComplete}
        required={props.required}
        inputMode={props.inputMode}
        pattern={props.pattern}
        aria-describedby={props.hint ? id + "-hint" : undefined}
      />
      {props.hint && (
        <p class="hint" id={id + "-hint"}>
          {props.hint}
        </p>
      )}
    </div>
  );
}

export function Alert(props: { kind?: "error" | "info" | "success"; children: ComponentChildren }) {
  const kind = props.kind ?? "error";
  return (
    <div class={"alert alert-" + kind} role={kind === "error" ? "alert" : "status"}>
      {props.children}
    </div>
  );
}

/** A modal dialog on the native <dialog>: focus moves in and stays, Escape cancels. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  // Unique: a dialog may open over another (the password confirmation over the one that needs it).
  const titleId = useRef("dialog-title-" + ++fieldIds).current;
  useEffect(() => {
    const d = ref.current!;
    d.showModal();
    return () => d.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? "wide" : undefined}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** A centred card for the pages before sign-in. */
export function AuthCard(props: { title: string; children: ComponentChildren }) {
  useTitle(props.title);
  return (
    <main class="auth">
      <div class="brand" aria-hidden="true">
        <img src="/favicon.svg" alt="" width={28} height={28} /> CloudDB Manager
      </div>
      <section class="card">
        <h1>{props.title}</h1>
        {props.children}
      </section>
    </main>
  );
}

export function useTitle(title: string) {
  useEffect(() => {
    document.title = title + " · CloudDB Manager";
  }, [title]);
}

export function formatBytes(n: number): string {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return v.toFixed(v < 10 ? 1 : 0) + " " + units[i];
}

export const passwordHint = "At least 8 characters, with a lower-case and an upper-case letter, a digit and a symbol.";

/** Puts text on the clipboard; where the Clipboard API is missing (an http:// origin other than
 * localhost), through a selected, off-screen textarea. */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("The browser refused to copy: select the text and copy it by hand.");
}

/** A button that copies text and says so for a moment (also to screen readers). */
export function CopyButton(props: { text: string | (() => string); label: string; children?: ComponentChildren }) {
  const [state, setState] = useState<"" | "copied" | "failed">("");
  useEffect(() => {
    if (!state) return;
    const t = setTimeout(() => setState(""), 2000);
    return () => clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      class="copy"
      aria-label={props.label}
      onClick={() => copyText(typeof props.text === "string" ? props.text : props.text()).then(() => setState("copied"), () => setState("failed"))}
    >
      {props.children ?? "Copy"}
      <span class="copy-state" aria-live="polite">
        {state === "copied" ? " ✓ Copied" : state === "failed" ? " ✗ Not copied" : ""}
      </span>
    </button>
  );
}

/** Usage against a limit: a labelled meter, amber from 80 % and red at the limit. */
export function UsageBar(props: { label: string; used: number; limit: number; format?: (n: number) => string }) {
  const f = props.format ?? ((n: number) => n.toLocaleString());
  const share = props.limit > 0 ? Math.min(1, props.used / props.limit) : 0;
  const level = share >= 1 ? "full" : share >= 0.8 ? "high" : "ok";
  const id = useRef("u" + ++fieldIds).current;
  return (
    <div class="usage">
      <div class="usage-head">
        <span id={id}>{props.label}</span>
        <span class="muted">
          {f(props.used)} of {f(props.limit)}
        </span>
      </div>
      <div
        class={"bar bar-" + level}
        role="meter"
        aria-labelledby={id}
        aria-valuemin={0}
        aria-valuemax={props.limit}
        aria-valuenow={Math.min(props.used, props.limit)}
        aria-valuetext={`${f(props.used)} of ${f(props.limit)}`}
      >
        <div class="bar-fill" style={{ width: (share * 100).toFixed(1) + "%" }} />
      </div>
    </div>
  );
}

export function plural(n: number, one: string, many = one + "s"): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** A wide table's horizontal scroller, reachable by keyboard (a narrow window scrolls it). */
export function TableScroll(props: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label={props.label}>
      {props.children}
    </div>
  );
}

/** The state of a form or button that calls the API: busy while it runs, the error it ended
 * with. act runs f; run does the same for a form's submit event. */
export function useSubmit() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const run = (e: Event, f: () => Promise<void>) => {
    e.preventDefault();
    return act(f);
  };
  return { busy, error, setError, run, act };
}
