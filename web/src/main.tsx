import { render } from "preact";
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { api } from "./api";
import { AcceptInvitation, Forgot, Register, ResetPassword, SignIn, Unlock, Verify } from "./pages/auth";
import { Databases } from "./pages/databases";
import { CreateTenant, SwitchTenant, TenantPage } from "./pages/tenants";
import { Welcome } from "./pages/welcome";
import { ReauthDialog } from "./reauth";
import { resumeSession, signOut } from "./session";
import { navigate, query, route, session, TenantChoice, useStore } from "./store";
import { Link } from "./ui";

// The SQL editor carries CodeMirror: it is loaded when a database is opened, not before.
const Editor = lazy(() => import("./pages/editor").then((m) => ({ default: m.Editor })));
// The account page carries the QR code generator: loaded when opened.
const Account = lazy(() => import("./pages/account").then((m) => ({ default: m.Account })));

const publicPages: Record<string, () => preact.JSX.Element> = {
  "/login": SignIn,
  "/register": Register,
  "/verify": Verify,
  "/forgot-password": Forgot,
  "/reset-password": ResetPassword,
  "/unlock": Unlock,
  "/invitations/accept": AcceptInvitation,
};

function App() {
  const me = useStore(session);
  const path = useStore(route).split("?")[0];
  const Public = publicPages[path];
  // The mail links work whoever is signed in: they act on their token, not the session. A sign-in
  // page naming a tenant serves a new tenant's first sign-in.
  const signedInElsewhere = me && (path === "/register" || (path === "/login" && !query("tenant")));
  if (Public && !signedInElsewhere) return <Public />;
  if (me === undefined) return <p class="loading">Loading…</p>;
  if (me === null) {
    navigate("/login" + (path === "/" ? "" : "?next=" + encodeURIComponent(route.get())), true);
    return null;
  }
  if (path === "/welcome") return <Shell><Welcome /></Shell>;
  if (path === "/account") {
    return (
      <Shell>
        <Suspense fallback={<p class="loading">Loading…</p>}>
          <Account />
        </Suspense>
      </Shell>
    );
  }
  if (!me.tenant) return <Shell><CreateTenant /></Shell>;
  const db = /^\/databases\/([0-9a-f-]{36})$/.exec(path);
  if (db) {
    return (
      <Shell wide>
        <Suspense fallback={<p class="loading">Loading the editor…</p>}>
          <Editor id={db[1]} key={db[1]} />
        </Suspense>
      </Shell>
    );
  }
  if (path === "/tenants/new") return <Shell><CreateTenant /></Shell>;
  if (path === "/tenant") return <Shell><TenantPage /></Shell>;
  if (path !== "/databases") {
    navigate("/databases", true);
    return null;
  }
  return <Shell><Databases /></Shell>;
}

function TenantSwitcher() {
  const me = useStore(session)!;
  const [tenants, setTenants] = useState<TenantChoice[]>([]);
  const [switching, setSwitching] = useState<TenantChoice | null>(null);
  useEffect(() => {
    api<{ items: TenantChoice[] }>("GET", "/me/tenants").then((r) => setTenants(r.items), () => {});
  }, [me.tenant?.id]);
  if (!me.tenant) return null;
  return (
    <>
      <label class="tenant-switch">
        <span class="sr-only">Tenant</span>
        <select
          value={me.tenant.id}
          onChange={(e) => {
            const select = e.currentTarget;
            const v = select.value;
            // The current tenant stays chosen until the switch is done (or for good, if cancelled).
            select.value = me.tenant!.id;
            if (v === "+") return navigate("/tenants/new");
            setSwitching(tenants.find((t) => t.id === v) ?? null);
          }}
        >
          {tenants.length === 0 && <option value={me.tenant.id}>{me.tenant.name}</option>}
          {tenants.map((t) => (
            <option value={t.id} key={t.id}>
              {t.name} ({t.role.replace("_", " ")})
            </option>
          ))}
          <option value="+">New tenant…</option>
        </select>
      </label>
      {switching && <SwitchTenant to={switching} onClose={() => setSwitching(null)} />}
    </>
  );
}

function Shell(props: { children: preact.ComponentChildren; wide?: boolean }) {
  const me = useStore(session)!;
  const here = useStore(route).split("?")[0];
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link href="/databases" class="logo">
          <img src="/favicon.svg" alt="" width={22} height={22} />
          CloudDB Manager
        </Link>
        <nav aria-label="Main">
          {me.tenant && (
            <>
              <Link href="/databases" aria-current={here.startsWith("/databases") ? "page" : undefined}>
                Databases
              </Link>
              <Link href="/tenant" aria-current={here === "/tenant" ? "page" : undefined}>
                Tenant
              </Link>
            </>
          )}
          <Link href="/account" aria-current={here === "/account" ? "page" : undefined}>
            Account
          </Link>
        </nav>
        <div class="spacer" />
        <TenantSwitcher />
        <span class="who" title={me.user.email}>
          {me.user.name || me.user.email}
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" class={props.wide ? "wide" : undefined}>
        {props.children}
      </main>
      <ReauthDialog />
    </>
  );
}

resumeSession();
render(<App />, document.getElementById("app")!);
