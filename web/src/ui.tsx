import type { AnchorHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
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
  type?: "text" | "email" | "password";
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
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current!;
    d.showModal();
    return () => d.close();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby="dialog-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <h2 id="dialog-title">{props.title}</h2>
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
