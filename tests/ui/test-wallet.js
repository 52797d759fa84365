// A Wallet Standard wallet for the browser tests (tests/e2e/tests/oracle/ui.rs), registered
// the way every wallet registers: the `wallet-standard:register-wallet` window event. It
// holds one keypair (the owner's seed, hex), signs with the browser's own WebCrypto Ed25519,
// simulates before it signs and sends (as wallets do), and sends through the local chain's
// JSON-RPC. Run with WebDriver's execute_async: arguments [seedHex, rpcUrl, callback].
const done = arguments[arguments.length - 1];
const [seedHex, rpcUrl] = arguments;
(async () => {
  const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  const base58 = (bytes) => {
    let n = 0n;
    for (const b of bytes) n = n * 256n + BigInt(b);
    let out = '';
    while (n > 0n) { out = B58[Number(n % 58n)] + out; n /= 58n; }
    for (const b of bytes) { if (b !== 0) break; out = '1' + out; }
    return out;
  };
  const unbase58 = (text) => {
    let n = 0n;
    for (const c of text) n = n * 58n + BigInt(B58.indexOf(c));
    const bytes = [];
    while (n > 0n) { bytes.unshift(Number(n % 256n)); n /= 256n; }
    for (const c of text) { if (c !== '1') break; bytes.unshift(0); }
    return Uint8Array.from(bytes);
  };
  const base64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const unbase64url = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

  const seed = Uint8Array.from(seedHex.match(/../g).map((h) => parseInt(h, 16)));
  // PKCS#8 of an Ed25519 private key: a fixed 16-byte prefix, then the 32-byte seed.
  const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, ...seed]);
  const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
  const publicKey = unbase64url((await crypto.subtle.exportKey('jwk', key)).x);
  const address = base58(publicKey);
  const sign = async (bytes) => new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, key, bytes));
  // A legacy transaction: [signature count][signatures][message]; this key pays, so signs first.
  const signTransaction = async (tx) => {
    const count = tx[0];
    if (count === 0 || count > 127) throw new Error('unexpected signature count ' + count);
    const message = tx.slice(1 + 64 * count);
    const feePayer = message.slice(4, 36); // header (3 bytes), account count (1), first account
    if (base58(feePayer) !== address) throw new Error('the fee payer is not this wallet');
    const signed = tx.slice();
    signed.set(await sign(message), 1);
    return signed;
  };
  const rpc = async (method, params) => {
    const answer = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    const json = await answer.json();
    if (json.error) throw new Error(method + ': ' + json.error.message);
    return json.result;
  };
  const calls = (window.__testWallet = { simulated: [], sent: [], signedMessages: 0 });
  const features = ['solana:signAndSendTransaction', 'solana:signTransaction', 'solana:signMessage'];
  const account = Object.freeze({ address, publicKey, chains: ['solana:localnet'], features });
  const wallet = {
    version: '1.0.0',
    name: 'OVPP Test Wallet',
    icon: 'data:image/svg+xml;base64,' + btoa('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8" fill="#333"/></svg>'),
    chains: ['solana:localnet'],
    accounts: [account],
    features: {
      'standard:connect': { version: '1.0.0', connect: async () => ({ accounts: [account] }) },
      'standard:events': { version: '1.0.0', on: () => () => {} },
      'solana:signTransaction': {
        version: '1.0.0',
        supportedTransactionVersions: ['legacy'],
        signTransaction: (...inputs) => Promise.all(inputs.map(async (i) => ({ signedTransaction: await signTransaction(i.transaction) }))),
      },
      'solana:signAndSendTransaction': {
        version: '1.0.0',
        supportedTransactionVersions: ['legacy'],
        signAndSendTransaction: (...inputs) => Promise.all(inputs.map(async (input) => {
          if (input.chain !== 'solana:localnet') throw new Error('this wallet is on solana:localnet, not ' + input.chain);
          const signed = await signTransaction(input.transaction);
          const simulated = await rpc('simulateTransaction', [base64(signed), { encoding: 'base64', sigVerify: true, commitment: 'confirmed' }]);
          calls.simulated.push(simulated.value);
          if (simulated.value.err) throw new Error('the simulation failed: ' + JSON.stringify(simulated.value.err));
          const signature = await rpc('sendTransaction', [base64(signed), { encoding: 'base64', preflightCommitment: 'confirmed' }]);
          for (let i = 0; i < 120; i++) {
            const status = (await rpc('getSignatureStatuses', [[signature]])).value[0];
            if (status && status.err) throw new Error('the transaction failed: ' + JSON.stringify(status.err));
            if (status && ['confirmed', 'finalized'].includes(status.confirmationStatus)) break;
            await new Promise((r) => setTimeout(r, 250));
          }
          calls.sent.push(signature);
          return { signature: unbase58(signature) };
        })),
      },
      'solana:signMessage': {
        version: '1.1.0',
        signMessage: (...inputs) => Promise.all(inputs.map(async (i) => {
          calls.signedMessages += 1;
          return { signedMessage: i.message, signature: await sign(i.message), signatureType: 'ed25519' };
        })),
      },
    },
  };
  window.dispatchEvent(new CustomEvent('wallet-standard:register-wallet', { detail: (api) => api.register(wallet) }));
  done({ address });
})().catch((e) => done({ error: String(e && e.stack || e) }));
