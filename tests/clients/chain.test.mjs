// Standard Solana clients (Anchor TS, web3.js, spl-token) against a running local network:
// if these pass, wallets and dapps built on them work against it too.
//
//   OVPP_RPC_URL=http://127.0.0.1:8899 OVPP_ORACLE_URL=http://127.0.0.1:8787 \
//   OVPP_OWNER_KEYPAIR=ovpp-localnet/owners/owner-0.json node --test tests/clients/chain.test.mjs
//
// The owner must be funded and own devices with unclaimed rewards in posted epochs
// (owner 0 of ovpp-localnet never auto-claims).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import anchor from '@coral-xyz/anchor';
import { Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, TransactionMessage, VersionedTransaction } from '@solana/web3.js';
import { TOKEN_2022_PROGRAM_ID, getAccount, getAssociatedTokenAddressSync } from '@solana/spl-token';

const { AnchorProvider, BN, Program, Wallet } = anchor;
const bs58 = anchor.utils.bytes.bs58;

// ---------------------------------------------------------------------------------------------
// Inputs

function requireEnv(name, what) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${what}`);
  return value;
}

const RPC_URL = requireEnv('OVPP_RPC_URL', 'the HTTP JSON-RPC URL of the running local network, e.g. http://127.0.0.1:8899');
const ORACLE_URL = requireEnv('OVPP_ORACLE_URL', "the oracle's HTTP API, e.g. http://127.0.0.1:8787").replace(/\/+$/, '');
const OWNER_KEYPAIR = requireEnv(
  'OVPP_OWNER_KEYPAIR',
  'a Solana CLI keypair file of a funded owner with unclaimed rewards, e.g. ovpp-localnet/owners/owner-0.json',
);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const IDL_PATH = process.env.OVPP_IDL || path.join(REPO_ROOT, 'programs', 'ovpp', 'idl', 'ovpp.json');

// PubSub listens on the RPC port + 1 (as solana-test-validator and surfpool do).
function defaultWsUrl(rpcUrl) {
  const url = new URL(rpcUrl);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.port = String(port + 1);
  return url.toString();
}
const WS_URL = process.env.OVPP_WS_URL || defaultWsUrl(RPC_URL);

// ---------------------------------------------------------------------------------------------
// Bounded waits: no network step may hang the run.

const STEP_MS = 60_000;
const HTTP_MS = 30_000;

function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Every JSON-RPC request gets a deadline (web3.js sets none of its own).
const timedFetch = (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(HTTP_MS) });

const idl = JSON.parse(readFileSync(IDL_PATH, 'utf8'));
const owner = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(readFileSync(OWNER_KEYPAIR, 'utf8'))));
const connection = new Connection(RPC_URL, { commitment: 'confirmed', wsEndpoint: WS_URL, fetch: timedFetch });
const provider = new AnchorProvider(connection, new Wallet(owner), { commitment: 'confirmed', preflightCommitment: 'confirmed' });
const program = new Program(idl, provider);
const programId = program.programId;

after(() => {
  // web3.js keeps reconnecting its websocket for ever; stop that so node can exit.
  const ws = connection._rpcWebSocket;
  ws.setAutoReconnect(false);
  ws.close();
});

// ---------------------------------------------------------------------------------------------
// Addresses and layouts (programs/ovpp/src/protocol.rs, state.rs)

const pda = (...seeds) => PublicKey.findProgramAddressSync(seeds, programId)[0];
const u64le = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const configPda = pda(Buffer.from('config'));
const mintPda = pda(Buffer.from('mint'));
const devicePda = (deviceKey) => pda(Buffer.from('device'), deviceKey.toBuffer());
const epochPda = (epoch) => pda(Buffer.from('epoch'), u64le(epoch));

// Device: 8-byte discriminator, device_key (32), then owner at 40 and kind at 72.
const DEVICE_OWNER_OFFSET = 40;
const DEVICE_KIND_OFFSET = 72;

// The on-chain (Borsh) index of a DeviceKind is its position in the IDL's enum; Anchor TS
// decodes it as { camelCaseName: {} }.
const kindVariants = idl.types.find((t) => t.name === 'DeviceKind').type.variants.map((v) => v.name);
const camel = (s) => s[0].toLowerCase() + s.slice(1);
const kindName = (decoded) => Object.keys(decoded)[0];
const kindIndex = (decoded) => kindVariants.map(camel).indexOf(kindName(decoded));

const errorCode = (name) => {
  const e = idl.errors.find((x) => x.name === name);
  assert.ok(e, `${name} is not in the IDL's errors`);
  return e.code;
};

const big = (bn) => BigInt(bn.toString());
const region = (code) => [...Buffer.from(code, 'ascii'), ...Array(8 - code.length).fill(0)];

// Merkle leaf and node hashes, exactly as protocol.rs defines them.
const sha256 = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
function leafHash(deviceKey, leaf) {
  const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  return sha256(
    Buffer.from([0x00]), Buffer.from('OVPP-LEAF-V1'), programId.toBuffer(), deviceKey.toBuffer(),
    u64le(leaf.cumulative_amount), u16(leaf.reputation_bps), u64le(leaf.epoch), u32(leaf.epochs_active),
    u32(leaf.faults), u64le(leaf.energy_delivered_wh), u64le(leaf.flexibility_delivered_wh),
  );
}
function rootFromProof(leaf, proof) {
  return proof.reduce((acc, sibling) => {
    const [lo, hi] = Buffer.compare(acc, sibling) <= 0 ? [acc, sibling] : [sibling, acc];
    return sha256(Buffer.from([0x01]), lo, hi);
  }, leaf);
}

// ---------------------------------------------------------------------------------------------
// Helpers over the chain and the oracle

// GET /v1/rewards/{device_key} (oracle/src/server.rs, body: ovpp_wire::http::Rewards); no auth.
// null when the oracle has nothing for the device yet, as the CLI treats it.
async function fetchRewards(deviceKey) {
  const res = await fetch(`${ORACLE_URL}/v1/rewards/${deviceKey.toBase58()}`, { signal: AbortSignal.timeout(HTTP_MS) });
  const body = await res.json();
  if (!res.ok) {
    if (['no_rewards', 'no_posted_epoch'].includes(body?.error?.code)) return null;
    throw new Error(`oracle: HTTP ${res.status}: ${JSON.stringify(body)}`);
  }
  for (const [field, value] of Object.entries(body.leaf)) {
    // JSON numbers: fine while below 2^53 (9 billion OVPP per device).
    assert.ok(Number.isSafeInteger(value), `leaf.${field} = ${value} does not fit a JS number exactly`);
  }
  return { ...body, proof: body.proof.map((h) => Buffer.from(h, 'hex')) };
}

// The leaf as the program's `claim` takes it (IDL type RewardLeaf).
const leafArg = (leaf) => ({
  epoch: new BN(leaf.epoch),
  cumulativeAmount: new BN(leaf.cumulative_amount),
  reputationBps: leaf.reputation_bps,
  epochsActive: leaf.epochs_active,
  faults: leaf.faults,
  energyDeliveredWh: new BN(leaf.energy_delivered_wh),
  flexibilityDeliveredWh: new BN(leaf.flexibility_delivered_wh),
});

// The claim's accounts that Anchor cannot resolve from the IDL (mint is `address = config.mint`,
// the device PDA's seed is read from the device account itself).
const claimAccounts = (deviceKey, deviceOwner) => ({
  payer: owner.publicKey,
  mint: mintPda,
  device: devicePda(deviceKey),
  owner: deviceOwner,
  ownerTokenAccount: getAssociatedTokenAddressSync(mintPda, deviceOwner, false, TOKEN_2022_PROGRAM_ID),
});

// The owner's OVPP in base units, summed over their Token-2022 accounts of the mint.
async function ovppBalance(wallet) {
  const { value } = await withTimeout(connection.getParsedTokenAccountsByOwner(wallet, { mint: mintPda }, 'confirmed'), 'getParsedTokenAccountsByOwner');
  return value.reduce((sum, { account }) => sum + BigInt(account.data.parsed.info.tokenAmount.amount), 0n);
}

async function registerNewDevice() {
  const deviceKey = Keypair.generate();
  const params = { ratedPowerW: new BN(5_000), energyCapacityWh: new BN(10_000), region: region('DE-BY'), locationCell: new BN(0) };
  const signature = await withTimeout(
    program.methods
      .registerDevice({ homeBattery: {} }, params)
      .accounts({ owner: owner.publicKey, deviceKey: deviceKey.publicKey })
      .signers([deviceKey])
      .rpc(),
    'registerDevice',
    90_000, // Anchor itself resends for up to 60 s
  );
  return { deviceKey: deviceKey.publicKey, params, signature };
}

// An owner's device with something left to claim, with the oracle's proof for it.
async function claimableDevice() {
  const devices = await withTimeout(program.account.device.all([{ memcmp: { offset: DEVICE_OWNER_OFFSET, bytes: owner.publicKey.toBase58() } }]), 'device.all');
  for (const { account } of devices) {
    if (kindName(account.status) !== 'active') continue;
    const rewards = await fetchRewards(account.deviceKey);
    if (rewards && BigInt(rewards.leaf.cumulative_amount) > big(account.claimed)) return { device: account, rewards };
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls until `check` returns something, for at most `ms`.
async function until(check, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(100);
  }
}

// Confirms at `confirmed`; the abort signal makes web3.js drop its signature subscription and
// block-height polling on timeout (a plain race would leave them running). Returns the error.
async function confirm(signature, latest, what) {
  try {
    const { value } = await connection.confirmTransaction({ signature, ...latest, abortSignal: AbortSignal.timeout(STEP_MS) }, 'confirmed');
    return value.err;
  } catch (e) {
    if (e?.name === 'TimeoutError') throw new Error(`${what}: ${signature} not confirmed within ${STEP_MS / 1000} s`);
    throw e;
  }
}

// web3.js 1.x subscribes lazily and has no public "subscribed" event: read its own
// bookkeeping, so the transaction is not sent before the server knows about us.
const untilSubscribed = (clientId) =>
  until(
    () => connection._subscriptionsByHash[connection._subscriptionHashByClientSubscriptionId[clientId]]?.state === 'subscribed',
    'logsSubscribe acknowledged',
  );

// ---------------------------------------------------------------------------------------------
// The cases

test('accounts decode: config, the owner\'s devices (by owner, by kind), posted epochs', { timeout: 120_000 }, async () => {
  assert.equal(programId.toBase58(), idl.address);
  const config = await withTimeout(program.account.config.fetch(configPda), 'config.fetch');
  assert.ok(config.mint.equals(mintPda), 'config.mint is the ["mint"] PDA');
  assert.ok(config.lastEpoch.gten(1), 'at least one epoch posted');

  const mine = await withTimeout(
    program.account.device.all([{ memcmp: { offset: DEVICE_OWNER_OFFSET, bytes: owner.publicKey.toBase58() } }]),
    'device.all by owner',
  );
  assert.ok(mine.length > 0, `owner ${owner.publicKey.toBase58()} has no devices`);
  for (const { publicKey, account } of mine) {
    assert.ok(account.owner.equals(owner.publicKey));
    assert.ok(publicKey.equals(devicePda(account.deviceKey)), 'device account is at ["device", device_key]');
  }

  const kind = mine[0].account.kind;
  const sameKind = await withTimeout(
    program.account.device.all([{ memcmp: { offset: DEVICE_KIND_OFFSET, bytes: bs58.encode([kindIndex(kind)]) } }]),
    'device.all by kind',
  );
  assert.ok(sameKind.some(({ publicKey }) => publicKey.equals(mine[0].publicKey)), 'the owner\'s device is among its kind');
  for (const { account } of sameKind) assert.equal(kindName(account.kind), kindName(kind));

  const epochs = await withTimeout(program.account.epoch.all(), 'epoch.all');
  assert.ok(epochs.length > 0, 'at least one posted epoch account');
  for (const { publicKey, account } of epochs) {
    assert.ok(publicKey.equals(epochPda(account.epoch)), 'epoch account is at ["epoch", epoch u64 LE]');
    assert.equal(account.root.length, 32);
  }
  const last = await withTimeout(program.account.epoch.fetch(epochPda(config.lastEpoch)), 'epoch.fetch');
  assert.ok(last.epoch.eq(config.lastEpoch));
  assert.ok(last.cumulativeTotal.eq(config.cumulativeTotal));
});

test('registerDevice with Anchor .rpc(): owner and device key sign; the account reads back', { timeout: 120_000 }, async () => {
  const before = Math.floor(Date.now() / 1000);
  const { deviceKey, params } = await registerNewDevice();
  const device = await withTimeout(program.account.device.fetch(devicePda(deviceKey)), 'device.fetch');
  assert.ok(device.deviceKey.equals(deviceKey));
  assert.ok(device.owner.equals(owner.publicKey));
  assert.equal(kindName(device.kind), 'homeBattery');
  assert.equal(kindName(device.status), 'active');
  assert.deepEqual(device.region, params.region);
  assert.ok(device.ratedPowerW.eq(params.ratedPowerW));
  assert.ok(device.energyCapacityWh.eq(params.energyCapacityWh));
  assert.ok(device.locationCell.eqn(0));
  assert.ok(device.claimed.eqn(0));
  assert.equal(device.transfers, 0);
  assert.equal(device.credit.reputationBps, 5_000); // INITIAL_REPUTATION_BPS
  // The chain's clock: within a few minutes of this machine's.
  assert.ok(Math.abs(device.registeredAt.toNumber() - before) < 300, `registered_at ${device.registeredAt} vs now ${before}`);
});

test('claim with the oracle\'s proof mints exactly cumulative - claimed to the owner\'s Token-2022 ATA', { timeout: 180_000 }, async () => {
  const found = await claimableDevice();
  assert.ok(found, `no device of ${owner.publicKey.toBase58()} has anything left to claim (use an owner that does not auto-claim)`);
  const { device, rewards } = found;

  // The proof leads to the root the chain holds for the leaf's epoch (ring of 8, epoch % 8).
  const config = await withTimeout(program.account.config.fetch(configPda), 'config.fetch');
  const entry = config.recentRoots[rewards.leaf.epoch % config.recentRoots.length];
  assert.ok(entry.epoch.eqn(rewards.leaf.epoch), `the chain holds no root for epoch ${rewards.leaf.epoch}`);
  assert.equal(Buffer.from(entry.root).toString('hex'), rewards.root);
  assert.equal(rootFromProof(leafHash(device.deviceKey, rewards.leaf), rewards.proof).toString('hex'), rewards.root);

  const expected = BigInt(rewards.leaf.cumulative_amount) - big(device.claimed);
  const balanceBefore = await ovppBalance(owner.publicKey);

  await withTimeout(
    program.methods
      .claim(leafArg(rewards.leaf), rewards.proof.map((h) => [...h]))
      .accountsPartial(claimAccounts(device.deviceKey, device.owner))
      .rpc(),
    'claim',
    90_000,
  );

  assert.equal(await ovppBalance(owner.publicKey), balanceBefore + expected);
  // The same through spl-token's reader of the ATA.
  const ata = await withTimeout(getAccount(connection, claimAccounts(device.deviceKey, device.owner).ownerTokenAccount, 'confirmed', TOKEN_2022_PROGRAM_ID), 'getAccount');
  assert.equal(ata.amount, balanceBefore + expected);
  assert.ok(ata.mint.equals(mintPda));
  const after = await withTimeout(program.account.device.fetch(devicePda(device.deviceKey)), 'device.fetch');
  assert.equal(big(after.claimed), BigInt(rewards.leaf.cumulative_amount));
});

test('simulateTransaction of a claim with a tampered amount fails with InvalidProof', { timeout: 120_000 }, async () => {
  // Any owner device with a leaf will do: the leaf's hash no longer matches, whatever was claimed.
  const devices = await withTimeout(program.account.device.all([{ memcmp: { offset: DEVICE_OWNER_OFFSET, bytes: owner.publicKey.toBase58() } }]), 'device.all');
  let target = null;
  for (const { account } of devices) {
    const rewards = kindName(account.status) === 'active' ? await fetchRewards(account.deviceKey) : null;
    if (rewards) { target = { device: account, rewards }; break; }
  }
  assert.ok(target, 'no device of the owner has a leaf at the oracle');
  const { device, rewards } = target;

  const tampered = { ...rewards.leaf, cumulative_amount: rewards.leaf.cumulative_amount + 1 };
  const ix = await program.methods
    .claim(leafArg(tampered), rewards.proof.map((h) => [...h]))
    .accountsPartial(claimAccounts(device.deviceKey, device.owner))
    .instruction();
  const { blockhash } = await withTimeout(connection.getLatestBlockhash('confirmed'), 'getLatestBlockhash');
  const tx = new VersionedTransaction(new TransactionMessage({ payerKey: owner.publicKey, recentBlockhash: blockhash, instructions: [ix] }).compileToV0Message());
  tx.sign([owner]);

  const { value } = await withTimeout(connection.simulateTransaction(tx, { commitment: 'confirmed', sigVerify: true }), 'simulateTransaction');
  assert.deepEqual(value.err, { InstructionError: [0, { Custom: errorCode('InvalidProof') }] });
  assert.ok(value.logs.some((l) => l.includes('InvalidProof')), `logs name InvalidProof:\n${value.logs.join('\n')}`);
});

test('airdrop, getTransaction logs, onLogs notification', { timeout: 180_000 }, async () => {
  const fresh = Keypair.generate();
  const lamports = LAMPORTS_PER_SOL / 2;
  const latest = await withTimeout(connection.getLatestBlockhash('confirmed'), 'getLatestBlockhash');
  const airdrop = await withTimeout(connection.requestAirdrop(fresh.publicKey, lamports), 'requestAirdrop');
  assert.equal(await confirm(airdrop, latest, 'confirm airdrop'), null);
  assert.equal(await withTimeout(connection.getBalance(fresh.publicKey, 'confirmed'), 'getBalance'), lamports);

  // Subscribe first, then send a program transaction: its logs must be pushed to us.
  // Other program transactions (the oracle's, the simulated owners') may arrive too.
  const seen = [];
  const listener = connection.onLogs(programId, (logs) => seen.push(logs), 'confirmed');
  try {
    await untilSubscribed(listener);
    const { signature } = await registerNewDevice();
    const ours = await until(() => seen.find((l) => l.signature === signature), 'onLogs notification of our transaction');
    assert.equal(ours.err, null);
    assert.ok(ours.logs.some((l) => l.includes(programId.toBase58())), ours.logs.join('\n'));

    const tx = await withTimeout(connection.getTransaction(signature, { maxSupportedTransactionVersion: 0, commitment: 'confirmed' }), 'getTransaction');
    assert.ok(tx, `getTransaction(${signature}) found nothing`);
    assert.equal(tx.meta.err, null);
    assert.ok(tx.meta.logMessages.some((l) => l.includes(`Program ${programId.toBase58()} invoke`)), tx.meta.logMessages.join('\n'));
  } finally {
    await connection.removeOnLogsListener(listener);
  }
});

test('getMinimumBalanceForRentExemption follows the default rent', { timeout: 60_000 }, async () => {
  // (128 bytes of account overhead + data) * 3480 lamports per byte-year * 2 years.
  for (const n of [0, 165]) {
    const lamports = await withTimeout(connection.getMinimumBalanceForRentExemption(n, 'confirmed'), 'getMinimumBalanceForRentExemption');
    assert.ok(lamports > 0, 'web3.js answers 0 when the getMinimumBalanceForRentExemption call fails');
    assert.equal(lamports, (128 + n) * 3480 * 2);
  }
});
