// Subscribes with the unmodified salesforce-pubsub-api-client (user-supplied auth) and prints
// one JSON line per callback: {"type": "event", "event": {...}} for each event, then exits once
// COUNT events arrived. Errors print {"type": "error", ...} and exit 2.
// Usage: node pubsub_subscribe.mjs ENDPOINT INSTANCE_URL TOKEN ORG_ID TOPIC COUNT [REPLAY_ID]
import PubSubApiClient from 'salesforce-pubsub-api-client';

const [endpoint, instanceUrl, accessToken, organizationId, topic, count, replayId] =
  process.argv.slice(2);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const out = (obj) =>
  process.stdout.write(
    JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n'
  );

const client = new PubSubApiClient(
  {
    authType: 'user-supplied',
    accessToken,
    instanceUrl,
    organizationId,
    pubSubEndpoint: endpoint,
    // the local server's certificate is self-signed
    rejectUnauthorizedSsl: false,
  },
  quiet
);

const want = Number(count);
let received = 0;
try {
  await client.connect();
  const callback = (subscription, type, data) => {
    if (type === 'event') {
      out({ type, event: data });
      received += 1;
      if (received >= want) {
        client.close();
        process.exit(0);
      }
    } else if (type === 'error') {
      out({ type, code: data?.code, details: data?.details ?? String(data) });
      client.close();
      process.exit(2);
    } else {
      out({ type });
    }
  };
  if (replayId) {
    client.subscribeFromReplayId(topic, callback, null, Number(replayId));
  } else {
    client.subscribe(topic, callback, null);
  }
} catch (error) {
  out({ type: 'error', details: String(error), cause: String(error?.cause) });
  process.exit(2);
}
