// OpenVPP dashboard: live updates (each page polls its own fragment and replaces <main>),
// and wallets through the Wallet Standard's window events (no library, no CDN): connect,
// claim with transactions the oracle builds, sign in with a signed message.
(() => {
  'use strict';

  const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  function base58(bytes) {
    let n = 0n;
    for (const b of bytes) n = n * 256n + BigInt(b);
    let out = '';
    while (n > 0n) { out = B58[Number(n % 58n)] + out; n /= 58n; }
    for (const b of bytes) { if (b !== 0) break; out = '1' + out; }
    return out;
  }
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const $ = (selector) => document.querySelector(selector);
  const say = (selector, text, error) => {
    const el = $(selector);
    if (el) { el.textContent = text; el.classList.toggle('error', !!error); }
  };
  const format = (base) => (base / 1e6).toLocaleString('en', { maximumFractionDigits: 6 }) + ' OVPP';

  // ---- live updates ------------------------------------------------------------------
  const sessionKey = 'ovpp-session';
  const session = () => { try { return JSON.parse(sessionStorage.getItem(sessionKey)); } catch { return null; } };
  async function refresh(force) {
    const main = $('main');
    if (!main || (!main.dataset.refresh && force !== true)) return;
    const url = new URL(location.href);
    url.searchParams.set('fragment', '1');
    const s = session();
    try {
      const answer = await fetch(url, { headers: s ? { authorization: 'Bearer ' + s.token } : {} });
      if (answer.status === 401 && s) {
        // The session expired: sign in again (the page reloads without private data).
        sessionStorage.removeItem(sessionKey);
        location.reload();
        return;
      }
      if (answer.ok) {
        main.innerHTML = await answer.text();
        document.dispatchEvent(new Event('ovpp:updated'));
      }
    } catch { /* a moment offline: the next poll tries again */ }
  }
  let polling = null;
  function startPolling() {
    const main = $('main');
    const secs = Number(main && main.dataset.refresh);
    if (secs > 0 && !polling) polling = setInterval(refresh, secs * 1000);
  }
  // Signed in: the owner's view of the page, kept live.
  async function showPrivate() {
    await refresh(true);
    $('main').dataset.refresh = '10';
    startPolling();
  }

  // ---- Wallet Standard (the app side of its window-event protocol) --------------------
  const wallets = [];
  let connected = null; // { wallet, account }
  // A wallet this page can use: one that can claim (claim page) or sign in (device page).
  const usable = (w) => w.features['standard:connect'] &&
    (document.querySelector('#claim') ? w.features['solana:signAndSendTransaction'] : w.features['solana:signMessage']);
  function renderWallets() {
    const box = $('#wallets');
    if (!box) return;
    box.replaceChildren();
    for (const wallet of wallets.filter(usable)) {
      const button = document.createElement('button');
      button.className = 'secondary';
      button.dataset.wallet = wallet.name;
      button.textContent = 'Connect ' + wallet.name;
      button.onclick = () => connect(wallet);
      box.append(button);
    }
    if (!wallets.some(usable)) {
      say('#wallet-status', 'No Solana wallet found in this browser (Phantom, Solflare, Backpack: any Wallet Standard wallet that can '
        + ($('#claim') ? 'send transactions' : 'sign messages') + ').' + ($('#pay-qr') ? ' On a phone, scan the QR code instead.' : ''));
    } else if (!connected) {
      say('#wallet-status', '');
    }
  }
  const api = Object.freeze({
    register(...registered) {
      for (const w of registered) if (!wallets.includes(w)) wallets.push(w);
      renderWallets();
      return () => {
        for (const w of registered) { const i = wallets.indexOf(w); if (i >= 0) wallets.splice(i, 1); }
        renderWallets();
      };
    },
  });
  window.addEventListener('wallet-standard:register-wallet', (event) => event.detail(api));
  window.dispatchEvent(new CustomEvent('wallet-standard:app-ready', { detail: api }));

  async function connect(wallet) {
    try {
      const { accounts } = await wallet.features['standard:connect'].connect();
      if (!accounts.length) throw new Error('the wallet shared no account');
      connected = { wallet, account: accounts[0] };
      say('#wallet-status', 'Connected: ' + accounts[0].address);
      document.dispatchEvent(new Event('ovpp:connected'));
    } catch (e) {
      say('#wallet-status', 'Could not connect: ' + e.message, true);
    }
  }

  async function postJson(path, body) {
    const answer = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = await answer.json();
    if (!answer.ok) throw new Error(json.error ? json.error.message : answer.statusText);
    return json;
  }

  // ---- claim -------------------------------------------------------------------------
  // What is due, with transactions built now (their blockhash expires in about a minute).
  const claimsDue = () => postJson('/v1/claims/transactions', { owner: connected.account.address });
  async function loadClaims() {
    if (!connected || !$('#claim')) return;
    try {
      const due = await claimsDue();
      const devices = due.transactions.reduce((n, t) => n + t.devices.length, 0);
      $('#claim-total').textContent = format(due.total);
      $('#claim-total').dataset.amount = String(due.total);
      say('#claim-devices', devices ? `${devices} device(s), epoch ${due.epoch}, ${due.transactions.length} transaction(s)` : 'Nothing to claim now.');
      $('#claim-button').disabled = !devices;
    } catch (e) {
      say('#claim-devices', e.message, true);
    }
  }
  async function claim() {
    const send = connected && connected.wallet.features['solana:signAndSendTransaction'];
    if (!send) return;
    $('#claim-button').disabled = true;
    const chain = document.body.dataset.chain;
    try {
      // Fresh transactions, all to the wallet at once (one approval).
      const due = await claimsDue();
      const inputs = due.transactions.map((t) => ({ account: connected.account, transaction: fromBase64(t.transaction), chain }));
      const sent = await send.signAndSendTransaction(...inputs);
      const signatures = sent.map((s) => base58(s.signature));
      say('#claim-result', `Claimed ${format(due.total)}: ` + signatures.join(', '));
      $('#claim-result').dataset.amount = String(due.total);
      $('#claim-result').dataset.signatures = signatures.join(',');
    } catch (e) {
      say('#claim-result', 'Not claimed: ' + e.message, true);
    }
    await loadClaims();
  }

  // ---- sign in (device page) -----------------------------------------------------------
  async function signIn() {
    const sign = connected && connected.wallet.features['solana:signMessage'];
    if (!sign) { say('#wallet-status', 'This wallet cannot sign messages.', true); return; }
    try {
      const owner = connected.account.address;
      const answer = await fetch('/v1/sessions/message?owner=' + encodeURIComponent(owner));
      const challenge = await answer.json();
      if (!answer.ok) throw new Error(challenge.error ? challenge.error.message : answer.statusText);
      const [signed] = await sign.signMessage({ account: connected.account, message: new TextEncoder().encode(challenge.message) });
      const s = await postJson('/v1/sessions', { owner, nonce: challenge.nonce, issued_at: challenge.issued_at, signature: base58(signed.signature) });
      sessionStorage.setItem(sessionKey, JSON.stringify(s));
      say('#wallet-status', 'Signed in as ' + owner);
      await showPrivate();
    } catch (e) {
      say('#wallet-status', 'Not signed in: ' + e.message, true);
    }
  }

  // A live update replaced the page's content: its wallet buttons too.
  document.addEventListener('ovpp:updated', renderWallets);
  document.addEventListener('ovpp:connected', () => {
    if ($('#claim')) loadClaims();
    if ($('#sign-in')) signIn();
  });
  document.addEventListener('DOMContentLoaded', () => {
    renderWallets();
    startPolling();
    const button = $('#claim-button');
    if (button) button.onclick = claim;
    const qr = $('#pay-qr');
    if (qr) {
      const link = 'solana:' + location.origin + '/v1/pay/claim';
      qr.src = '/ui/qr.svg?data=' + encodeURIComponent(link);
      say('#pay-link', link);
    }
    if ($('#sign-in') && session()) showPrivate();
  });
})();
