// The unmodified salesforce-pubsub-api-client with username-password auth (its own login,
// jsforce's SOAP login at LOGIN_URL), subscribed from after REPLAY_ID. When the stream ends
// with UNAUTHENTICATED (code 16) it does what the client's users do: close, connect() again
// (a new login, so a new token) and subscribeFromReplayId after the newest event it processed.
// Prints one JSON line per callback; exits 0 once COUNT events arrived, 2 on any other error.
// Usage: node pubsub_reauth.mjs ENDPOINT LOGIN_URL USERNAME PASSWORD TOPIC COUNT REPLAY_ID
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [endpoint, loginUrl, username, password, topic, count, replayId] = process.argv.slice(2);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const out = (obj) =>
  process.stdout.write(
    JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n'
  );

const client = new PubSubApiClient(
  {
    authType: 'username-password',
    loginUrl,
    username,
    password,
    pubSubEndpoint: endpoint,
    rejectUnauthorizedSsl: false, // the local gRPC certificate is self-signed
  },
  quiet
);

const want = Number(count);
let received = 0;
let last = Number(replayId);
let reconnecting = false;

const callback = async (subscription, type, data) => {
  if (type === 'event') {
    out({ type, replayId: data.replayId, recordIds: data.payload.ChangeEventHeader.recordIds });
    last = Math.max(last, Number(data.replayId)); // callbacks of two responses may swap
    received += 1;
    if (received >= want) {
      client.close();
      process.exit(0);
    }
  } else if (type === 'error') {
    const errorCode = data?.metadata?.get?.('error-code')?.[0];
    out({ type, code: data?.code, errorCode, details: data?.details ?? String(data) });
    if (data?.code !== 16 || reconnecting) {
      client.close();
      process.exit(2);
    }
    reconnecting = true;
    client.close();
    await client.connect(); // logs in again: a new session
    out({ type: 'reconnected', after: last });
    client.subscribeFromReplayId(topic, callback, null, last);
    reconnecting = false;
  } else {
    out({ type });
  }
};

try {
  await client.connect();
  out({ type: 'connected' });
  client.subscribeFromReplayId(topic, callback, null, last);
} catch (error) {
  out({ type: 'error', details: String(error), cause: String(error?.cause) });
  process.exit(2);
}
