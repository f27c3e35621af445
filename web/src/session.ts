import { api, logout, refresh, setAccessToken, whenSessionLost } from "./api";
import { Me, navigate, route, session } from "./store";

/** Loads who is signed in after a login or refresh. */
export async function startSession() {
  session.set(await api<Me>("GET", "/me"));
}

/** On load: a live refresh cookie signs the person back in, silently. */
export async function resumeSession() {
  const pair = await refresh().catch(() => null);
  if (!pair) {
    session.set(null);
    return;
  }
  await startSession().catch(() => session.set(null));
}

export async function signOut() {
  await logout().catch(() => {});
  session.set(null);
  navigate("/login", true);
}

whenSessionLost(() => {
  setAccessToken(null);
  session.set(null);
  const here = route.get();
  navigate("/login?next=" + encodeURIComponent(here), true);
});
