// Chute grants and receipts with `jose`: what a Node app needs.
//
// An app signs a grant (who may upload what) and hands it to the browser;
// Chute answers a finished upload with a receipt, which the browser posts
// back to the app instead of a bare key. Both are compact HS256 JWTs signed
// with the secret Chute is configured with (CHUTE_GRANT_SECRET):
//
//   import { mintGrant, verifyReceipt } from './chute-tokens.mjs';
//   const grant = await mintGrant(String(user.id), { maxSize: 5 * 2 ** 20, types: ['image/*'],
//                                                   template: 'avatars/{sub}/{uuid}{ext}' });
//   const claims = await verifyReceipt(req.body.receipt, { subject: String(user.id) });
//   claims.key, claims.size, claims.type   // what Chute checked
//
// The secret is written as Chute reads it: `kid:secret` (the key id goes
// into every token's `kid` header, so secrets rotate) or a bare secret,
// whose key id Chute derives from its SHA-256. Pass `keys` (from parseKey)
// to use anything but the CHUTE_GRANT_SECRET environment variable; list
// retired keys after the current one to keep accepting their receipts.
//
// Chute signs grants, upload tokens and receipts with the same secret, and
// only the audience (`aud`) tells them apart: verifyReceipt insists on
// `chute-receipt`, so a grant or an upload token (which the browser holds
// before any byte is stored) is never taken for a receipt.
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, errors, jwtVerify } from 'jose';

export const GRANT_AUDIENCE = 'chute';
export const RECEIPT_AUDIENCE = 'chute-receipt';
export const ALGORITHM = 'HS256';
export const MIN_SECRET_LEN = 32; // bytes; Chute refuses shorter secrets
// The claims every receipt carries (chute_core::ReceiptClaims).
export const RECEIPT_CLAIMS = ['aud', 'exp', 'iat', 'jti', 'bucket', 'key', 'size', 'etag', 'type', 'filename', 'grant'];
const KID = /^[A-Za-z0-9._-]{1,32}$/;

/** A receipt that must not be trusted: `code` is stable (Chute's own codes
 * where they exist), the message safe to show to the user. */
export class ReceiptError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ReceiptError';
    this.code = code;
  }
}

/**
 * A key as Chute parses `grant_secret`: `kid:secret` when the part before
 * the colon looks like a key id and the rest is a full-length secret;
 * otherwise the whole string is the secret and its key id the first 8 hex
 * digits of its SHA-256. Answers `{ kid, secret }` (secret: Uint8Array).
 */
export function parseKey(spec) {
  const colon = spec.indexOf(':');
  const enc = new TextEncoder();
  if (colon > 0) {
    const kid = spec.slice(0, colon);
    const secret = enc.encode(spec.slice(colon + 1));
    if (KID.test(kid) && secret.length >= MIN_SECRET_LEN) return { kid, secret };
  }
  const secret = enc.encode(spec);
  if (secret.length < MIN_SECRET_LEN) {
    throw new Error(`a Chute secret needs at least ${MIN_SECRET_LEN} bytes; generate one with \`openssl rand -hex 32\``);
  }
  return { kid: createHash('sha256').update(secret).digest('hex').slice(0, 8), secret };
}

/** The key in CHUTE_GRANT_SECRET, the same value Chute is given. */
export function keysFromEnv(env = process.env) {
  if (!env.CHUTE_GRANT_SECRET) {
    throw new Error('CHUTE_GRANT_SECRET is not set; give the app the same value as the Chute server');
  }
  return [parseKey(env.CHUTE_GRANT_SECRET)];
}

/**
 * A grant JWT for `subject` (the user id; it comes back as the receipt's
 * `sub` and fills `{sub}` in templates), valid for `ttl` seconds, signed
 * with the first of `keys`. Limits are named options on purpose: an
 * unknown option throws here, before Chute refuses the grant for an
 * unknown claim (`401 token_malformed`).
 */
export async function mintGrant(subject, options = {}) {
  const { keys, ttl = 600, audience = GRANT_AUDIENCE, grantId, ...limits } = options;
  const names = {
    maxSize: 'max_size', minSize: 'min_size', types: 'types', extensions: 'extensions', maxFiles: 'max_files',
    template: 'template', prefix: 'prefix', metadata: 'metadata', uploadTtl: 'upload_ttl',
  };
  const claims = {};
  for (const [option, value] of Object.entries(limits)) {
    if (!(option in names)) throw new TypeError(`mintGrant: unknown option ${option}`);
    if ((option === 'types' || option === 'extensions') && value != null && !Array.isArray(value)) {
      throw new TypeError(`mintGrant: ${option} is an array, for example types: ['image/*']`);
    }
    const empty = value == null || (Array.isArray(value) && value.length === 0);
    if (!empty) claims[names[option]] = value;
  }
  if (!(Number.isInteger(ttl) && ttl > 0)) throw new RangeError('ttl must be a positive whole number of seconds');
  const [key] = keys ?? keysFromEnv();
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT', kid: key.kid })
    .setAudience(audience) // a string: Chute refuses an array `aud`
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(grantId ?? randomUUID());
  if (subject != null) jwt.setSubject(subject);
  return jwt.sign(key.secret);
}

/**
 * The claims of a Chute receipt, or a thrown ReceiptError. Checks the
 * HS256 signature (no other algorithm, no `none`) with the key its `kid`
 * names, the audience `chute-receipt`, the expiry, that every receipt
 * claim is present, and, when given, that the grant was issued to
 * `subject` and carried `metadata` (for example `{ purpose: 'avatar' }`,
 * so a receipt from another form's grant is refused).
 */
export async function verifyReceipt(token, { keys, subject, metadata, clockTolerance = 0 } = {}) {
  keys = keys ?? keysFromEnv();
  if (typeof token !== 'string' || token.trim() === '') throw new ReceiptError('receipt_missing', 'no receipt was sent');
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch (e) {
    throw new ReceiptError('token_malformed', `the receipt is not a JWT: ${e.message}`);
  }
  if (header.alg !== ALGORITHM) {
    throw new ReceiptError('token_wrong_algorithm', `receipts are signed with ${ALGORITHM}, not ${JSON.stringify(header.alg)}`);
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new ReceiptError('token_malformed', 'the receipt\'s key id (kid) is not a string');
  }
  const candidates = header.kid === undefined ? keys : keys.filter((k) => k.kid === header.kid);
  if (candidates.length === 0) {
    throw new ReceiptError('token_unknown_key', `the receipt is signed with an unknown key id ${JSON.stringify(header.kid)}`);
  }
  const claims = await decode(token, candidates, clockTolerance);
  const missing = RECEIPT_CLAIMS.filter((name) => !(name in claims));
  if (missing.length) throw new ReceiptError('token_malformed', `the receipt lacks the claims ${missing.join(', ')}`);
  if (subject !== undefined && claims.sub !== subject) {
    throw new ReceiptError('receipt_wrong_subject', 'this receipt belongs to an upload of another user');
  }
  if (typeof claims.grant !== 'object' || claims.grant === null || Array.isArray(claims.grant)) {
    throw new ReceiptError('token_malformed', "the receipt's grant is not an object");
  }
  const granted = claims.grant.metadata ?? {};
  for (const [name, value] of Object.entries(metadata ?? {})) {
    if (granted[name] !== value) {
      throw new ReceiptError('receipt_wrong_grant', `this receipt was not issued for ${name}=${JSON.stringify(value)}`);
    }
  }
  return claims;
}

async function decode(token, candidates, clockTolerance) {
  const options = { algorithms: [ALGORITHM], audience: RECEIPT_AUDIENCE, requiredClaims: ['exp'], clockTolerance };
  for (const key of candidates) {
    try {
      const { payload } = await jwtVerify(token, key.secret, options);
      if (typeof payload.aud !== 'string') {
        throw new ReceiptError('token_wrong_audience', `a receipt's audience is the string ${JSON.stringify(RECEIPT_AUDIENCE)}`);
      }
      return payload;
    } catch (e) {
      if (e instanceof ReceiptError) throw e;
      if (e instanceof errors.JWSSignatureVerificationFailed) continue;
      if (e instanceof errors.JWTExpired) {
        throw new ReceiptError('token_expired', 'the receipt has expired; upload the file again');
      }
      if (e instanceof errors.JWTClaimValidationFailed && e.claim === 'aud') {
        throw new ReceiptError('token_wrong_audience', `this token is not a receipt (audience must be ${JSON.stringify(RECEIPT_AUDIENCE)})`);
      }
      if (e instanceof errors.JOSEError) throw new ReceiptError('token_malformed', `the receipt is not valid: ${e.message}`);
      throw e;
    }
  }
  throw new ReceiptError('token_bad_signature', "the receipt's signature is invalid");
}
