// The pages before sign-in: sign in (with the two-factor step), register, the links of the mails
// (verify, reset password, accept an invitation, unlock), forgot password.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, describeError, login } from "../api";
import { navigate, query, TenantChoice } from "../store";
import { Alert, AuthCard, Field, Link, passwordHint, useSubmit } from "../ui";
import { startSession } from "../session";

/** Reads the token of a mail link and takes it out of the address bar and the history. */
function useLinkToken(): string {
  const [token] = useState(() => query("token"));
  useEffect(() => {
    if (token) history.replaceState(null, "", location.pathname);
  }, []);
  return token;
}

export function SignIn() {
  const [email, setEmail] = useState(query("email"));
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needCode, setNeedCode] = useState(false);
  const tenant = query("tenant");
  // A person in several tenants who names none is asked which one (the API lists them once the
  // password is right); the choice is kept for the two-factor step.
  const [choices, setChoices] = useState<TenantChoice[] | null>(null);
  const chosen = useRef("");
  const { busy, error, setError, run } = useSubmit();
  const submit = (e: Event) =>
    run(e, async () => {
      try {
        await login({ email, password, tenant: chosen.current || tenant || undefined, totp_code: needCode ? code : undefined });
      } catch (err) {
        if (err instanceof ApiError && err.code === "totp_required") {
          setNeedCode(true);
          return;
        }
        if (err instanceof ApiError && err.code === "validation_failed" && Array.isArray(err.details.tenants)) {
          setChoices(err.details.tenants as TenantChoice[]);
          return;
        }
        throw err;
      }
      await startSession();
      const next = query("next");
      navigate(next.startsWith("/") && !next.startsWith("//") ? next : "/databases", true);
    });
  const unverified = error instanceof ApiError && error.code === "email_not_verified";
  return (
    <AuthCard title={tenant ? `Sign in to ${tenant}` : "Sign in"}>
      {query("reason") === "password_changed" && <Alert kind="success">Your password is changed. Sign in with the new one.</Alert>}
      <form onSubmit={submit} aria-busy={busy}>
        {!needCode ? (
          <>
            <Field label="Email" type="email" value={email} onInput={setEmail} autoComplete="username" required autoFocus />
            <Field label="Password" type="password" value={password} onInput={setPassword} autoComplete="current-password" required />
          </>
        ) : (
          <Field
            label="Authentication code"
            hint="The 6-digit code of your authenticator app, or one of your recovery codes."
            value={code}
            onInput={setCode}
            autoComplete="one-time-code"
            required
            autoFocus
          />
        )}
        {error !== null && (
          <Alert>
            {describeError(error)}
            {unverified && (
              <>
                {" "}
                <button
                  type="button"
                  class="linklike"
                  onClick={async () => {
                    await api("POST", "/auth/verify/resend", { body: { email } }).catch(() => {});
                    setError(null);
                    navigate("/verify?sent=1");
                  }}
                >
                  Send the verification mail again
                </button>
              </>
            )}
          </Alert>
        )}
        {choices && !needCode ? (
          <fieldset class="choices">
            <legend>You belong to several tenants. Sign in to:</legend>
            {choices.map((t) => (
              <button key={t.id} class="primary" type="submit" disabled={busy} onClick={() => (chosen.current = t.id)}>
                {t.name} ({t.role.replace("_", " ")})
              </button>
            ))}
          </fieldset>
        ) : (
          <button class="primary" type="submit" disabled={busy}>
            {needCode ? "Verify and sign in" : "Sign in"}
          </button>
        )}
      </form>
      <p class="links">
        <Link href="/forgot-password">Forgot your password?</Link> · <Link href="/register">Create an account</Link>
      </p>
    </AuthCard>
  );
}

export function Register() {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const { busy, error, run } = useSubmit();
  if (done) {
    return (
      <AuthCard title="Check your mail">
        <p>
          We sent a verification link to <strong>{email}</strong>. Follow it within 24 hours to activate your account.
        </p>
        <p class="links">
          <Link href="/login">Back to sign in</Link>
        </p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Create an account">
      <form
        onSubmit={(e) =>
          run(e, async () => {
            await api("POST", "/auth/register", { body: { name, email, password } });
            setDone(true);
          })
        }
      >
        <Field label="Name" value={name} onInput={setName} autoComplete="name" required autoFocus />
        <Field label="Email" type="email" value={email} onInput={setEmail} autoComplete="email" required />
        <Field label="Password" type="password" hint={passwordHint} value={password} onInput={setPassword} autoComplete="new-password" required />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy}>
          Create account
        </button>
      </form>
      <p class="links">
        Already registered? <Link href="/login">Sign in</Link>
      </p>
    </AuthCard>
  );
}

/** /verify?token=…: the link of the verification mail. */
export function Verify() {
  const token = useLinkToken();
  const [state, setState] = useState<"working" | "done" | "sent" | unknown>(token ? "working" : query("sent") ? "sent" : null);
  const [email, setEmail] = useState("");
  useEffect(() => {
    if (!token) return;
    api("POST", "/auth/verify", { body: { token } }).then(
      () => setState("done"),
      (e) => setState(e),
    );
  }, []);
  if (state === "working") return <AuthCard title="Verifying your address">…</AuthCard>;
  if (state === "done") {
    return (
      <AuthCard title="Your address is verified">
        <Alert kind="success">Your account is active.</Alert>
        <p>
          <Link class="button primary" href="/login?next=/welcome">
            Sign in
          </Link>
        </p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Verify your address">
      {state === "sent" ? (
        <Alert kind="info">If that address has an account waiting for verification, a new link is on its way.</Alert>
      ) : state ? (
        <Alert>{describeError(state)}</Alert>
      ) : null}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          await api("POST", "/auth/verify/resend", { body: { email } }).catch(() => {});
          setState("sent");
        }}
      >
        <Field label="Email" type="email" value={email} onInput={setEmail} autoComplete="email" required />
        <button class="primary" type="submit">
          Send a new link
        </button>
      </form>
    </AuthCard>
  );
}

export function Forgot() {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const { busy, error, run } = useSubmit();
  return (
    <AuthCard title="Reset your password">
      {sent ? (
        <Alert kind="info">If {email} has an account, a mail with a link to choose a new password is on its way.</Alert>
      ) : (
        <form
          onSubmit={(e) =>
            run(e, async () => {
              await api("POST", "/auth/password/forgot", { body: { email } });
              setSent(true);
            })
          }
        >
          <Field label="Email" type="email" value={email} onInput={setEmail} autoComplete="email" required autoFocus />
          {error !== null && <Alert>{describeError(error)}</Alert>}
          <button class="primary" type="submit" disabled={busy}>
            Send the link
          </button>
        </form>
      )}
      <p class="links">
        <Link href="/login">Back to sign in</Link>
      </p>
    </AuthCard>
  );
}

/** /reset-password?token=…: the link of the password reset mail. */
export function ResetPassword() {
  const token = useLinkToken();
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const { busy, error, run } = useSubmit();
  if (done) {
    return (
      <AuthCard title="Password changed">
        <Alert kind="success">Your new password is set; every other session was signed out.</Alert>
        <p>
          <Link class="button primary" href="/login">
            Sign in
          </Link>
        </p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Choose a new password">
      <form
        onSubmit={(e) =>
          run(e, async () => {
            await api("POST", "/auth/password/reset", { body: { token, new_password: password } });
            setDone(true);
          })
        }
      >
        <Field label="New password" type="password" hint={passwordHint} value={password} onInput={setPassword} autoComplete="new-password" required autoFocus />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy || !token}>
          Set password
        </button>
      </form>
    </AuthCard>
  );
}

/** /unlock?token=…: the link mailed when an account locked after failed sign-ins. */
export function Unlock() {
  const token = useLinkToken();
  const [state, setState] = useState<"working" | "done" | unknown>("working");
  useEffect(() => {
    api("POST", "/auth/unlock", { body: { token } }).then(
      () => setState("done"),
      (e) => setState(e),
    );
  }, []);
  return (
    <AuthCard title="Unlock your account">
      {state === "working" ? <p>…</p> : state === "done" ? <Alert kind="success">Your account is unlocked.</Alert> : <Alert>{describeError(state)}</Alert>}
      <p class="links">
        <Link href="/login">Sign in</Link>
      </p>
    </AuthCard>
  );
}

/** /invitations/accept?token=…: joins the tenant, creating the account when the address has none. */
export function AcceptInvitation() {
  const token = useLinkToken();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [joined, setJoined] = useState<{ slug: string; name: string } | null>(null);
  const { busy, error, run } = useSubmit();
  if (joined) {
    return (
      <AuthCard title={`Welcome to ${joined.name}`}>
        <Alert kind="success">You are a member of {joined.name}.</Alert>
        <p>
          <Link class="button primary" href={"/login?tenant=" + encodeURIComponent(joined.slug)}>
            Sign in to {joined.name}
          </Link>
        </p>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Accept the invitation">
      <p>New to CloudDB Manager? Choose your name and a password. If this address already has an account, leave both empty.</p>
      <form
        onSubmit={(e) =>
          run(e, async () => {
            const body: Record<string, string> = { token };
            if (name || password) Object.assign(body, { name, password });
            const r = await api<{ tenant: { slug: string; name: string } }>("POST", "/invitations/accept", { body });
            setJoined(r.tenant);
          })
        }
      >
        <Field label="Name" value={name} onInput={setName} autoComplete="name" autoFocus />
        <Field label="Password" type="password" hint={passwordHint} value={password} onInput={setPassword} autoComplete="new-password" />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy || !token}>
          Join
        </button>
      </form>
    </AuthCard>
  );
}
