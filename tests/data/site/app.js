// What a page served from a sandbox can and cannot do: reach its own app, but not Jupyter as the user.
window.addEventListener('DOMContentLoaded', () => {
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  show('script', 'script ran');
  fetch('app.css').then(r => show('own-api', `own app answered ${r.status}`), e => show('own-api', `own app failed: ${e}`));
  try { show('cookie', `cookies readable (${document.cookie.length} chars)`); } catch (e) { show('cookie', `cookies blocked: ${e.name}`); }
  fetch('/api/status', {credentials: 'include'}).then(
    r => show('jupyter-api', `JUPYTER API ANSWERED ${r.status}`), e => show('jupyter-api', `Jupyter API blocked: ${e.name}`));
});
