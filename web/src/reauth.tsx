// Changes of credentials (password, two factors, API keys) and a few admin acts need the password
// confirmed within the last 5 minutes (docs/SECURITY.md, "Changes of credentials need a recent
// password"): the API answers 401 reauthentication_required. withReauth asks for the password
// (and the two-factor code) in a dialog, sends POST /me/reauth, and repeats the request once.
import { useState } from "preact/hooks";
import { api, ApiError, describeError } from "./api";
import { session, store, useStore } from "./store";
import { Alert, Dialog, Field, useSubmit } from "./ui";

const prompt = store<((ok: boolean) => void) | null>(null);

/** Runs f; if the API wants the password confirmed, asks for it and runs f once more. */
export async function withReauth<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "reauthentication_required")) throw e;
    const ok = await new Promise<boolean>((resolve) => prompt.set(resolve));
    prompt.set(null);
    if (!ok) throw e;
    return f();
  }
}

/** The dialog of withReauth, rendered once at the root of the app. */
export function ReauthDialog() {
  const resolve = useStore(prompt);
  const me = useStore(session);
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const { busy, error, setError, run } = useSubmit();
  if (!resolve) return null;
  const close = (ok: boolean) => {
    setPassword("");
    setCode("");
    setError(null);
    resolve(ok);
  };
  return (
    <Dialog title="Confirm it is you" onClose={() => close(false)}>
      <p>This change needs your password{me?.user.totp_enabled ? " and a two-factor code" : ""} once more.</p>
      <form
        onSubmit={(e) =>
          run(e, async () => {
            const body: Record<string, string> = { password };
            if (code) body.totp_code = code;
            await api("POST", "/me/reauth", { body });
            close(true);
          })
        }
      >
        <Field label="Your password" type="password" value={password} onInput={setPassword} autoComplete="current-password" required autoFocus />
        {me?.user.totp_enabled && (
          <Field label="Authentication code" hint="From your authenticator app, or a recovery code." value={code} onInput={setCode} autoComplete="one-time-code" required />
        )}
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <div class="buttons">
          <button type="button" onClick={() => close(false)}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Confirm
          </button>
        </div>
      </form>
    </Dialog>
  );
}
