import { useState } from "preact/hooks";
import { api, describeError } from "../api";
import { navigate, session, useStore } from "../store";
import { Alert, Field, useTitle } from "../ui";

/** Creating a tenant; a person without one lands here after their first sign-in. */
export function CreateTenant() {
  const me = useStore(session)!;
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useTitle("New tenant");
  return (
    <section class="narrow">
      <h1>{me.tenant ? "Create a tenant" : "Welcome! Create your tenant"}</h1>
      <p>A tenant holds your databases and the people you work with. You can invite them once it exists.</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const t = await api<{ slug: string }>("POST", "/tenants", { body: { name } });
            // A session belongs to the tenant it was opened in: the new one needs a sign-in.
            navigate(`/login?tenant=${encodeURIComponent(t.slug)}&email=${encodeURIComponent(me.user.email)}&next=/databases`);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Tenant name" hint="Your team or company, e.g. Acme." value={name} onInput={setName} required autoFocus />
        {error !== null && <Alert>{describeError(error)}</Alert>}
        <button class="primary" type="submit" disabled={busy}>
          Create tenant
        </button>
      </form>
    </section>
  );
}
