// The jsforce suite (tests/clients/test_jsforce_suite.py): unmodified jsforce from the npm
// registry, logged in through loginUrl with a username and password (its SOAP login), then
// multi-record CRUD, retrieve and upsert, a paged query with autoFetch, identity and describe.
// Prints one JSON line of what it saw; the Python test asserts on it.
const jsforce = require('jsforce');

(async () => {
  const [loginUrl, username, password] = process.argv.slice(2);
  const conn = new jsforce.Connection({ loginUrl });
  const info = await conn.login(username, password);
  const out = { version: conn.version, instanceUrl: conn.instanceUrl, login: info };

  // 450 contacts: jsforce splits them into Collections calls of 200 (allowRecursive)
  const Contact = conn.sobject('Contact');
  const rows = [];
  for (let i = 0; i < 450; i++) {
    rows.push({ LastName: `Suite ${String(i).padStart(3, '0')}`, Email: `s${i}@suite.test` });
  }
  const made = await Contact.create(rows, { allowRecursive: true });
  out.created = made.filter((r) => r.success).length;
  const ids = made.map((r) => r.id);

  // autoFetch follows nextRecordsUrl; a batch size of 200 makes it page
  let pages = 0;
  const query = conn.query('SELECT Id, LastName FROM Contact ORDER BY LastName', {
    autoFetch: true,
    maxFetch: 10000,
    headers: { 'Sforce-Query-Options': 'batchSize=200' },
  });
  query.on('fetch', () => { pages += 1; });
  const fetched = await query;
  out.query = { totalSize: fetched.totalSize, records: fetched.records.length, pages,
                first: fetched.records[0].LastName, last: fetched.records.at(-1).LastName };
  const streamed = [];
  await new Promise((resolve, reject) => {
    conn.query('SELECT Id FROM Contact', { headers: { 'Sforce-Query-Options': 'batchSize=200' } })
      .on('record', (r) => streamed.push(r.Id))
      .on('end', resolve)
      .on('error', reject)
      .run({ autoFetch: true, maxFetch: 300 });
  });
  out.maxFetched = streamed.length;

  const some = ids.slice(0, 3);
  const updated = await Contact.update(some.map((Id) => ({ Id, Title: 'Engineer' })));
  out.updated = updated.map((r) => r.success);
  const got = await Contact.retrieve(some, { fields: ['LastName', 'Title'] });
  out.retrieved = got.map((r) => [r.LastName, r.Title]);
  const upserted = await Contact.upsert(
    [{ Email: 's0@suite.test', LastName: 'Renamed' }, { Email: 'new@suite.test', LastName: 'New' }],
    'Email');
  out.upserted = upserted.map((r) => [r.success, r.created]);
  const single = await Contact.upsert({ Email: 'new@suite.test', Title: 'One' }, 'Email');
  out.upsertedOne = [single.success, single.created];
  const destroyed = await Contact.destroy(ids.slice(400), { allowRecursive: true });
  out.destroyed = destroyed.filter((r) => r.success).length;
  out.left = (await conn.query('SELECT COUNT() FROM Contact')).totalSize;

  const me = await conn.identity();
  out.identity = { user_id: me.user_id, organization_id: me.organization_id,
                   username: me.username, display_name: me.display_name };

  const global = await conn.describeGlobal();
  out.global = global.sobjects.some((o) => o.name === 'Contact');
  const contact = await conn.describe('Contact');
  const email = contact.fields.find((f) => f.name === 'Email');
  out.describe = { name: contact.name, keyPrefix: contact.keyPrefix, email: email && email.type,
                   accountRelationship: contact.fields.find((f) => f.name === 'AccountId').relationshipName };
  const since = new Date(Date.now() + 60000).toUTCString();
  try {
    const unchanged = await conn.request({
      method: 'GET', url: `/services/data/v${conn.version}/sobjects/Contact/describe`,
      headers: { 'If-Modified-Since': since },
    });
    out.ifModifiedSince = { result: unchanged === undefined ? 'undefined' : unchanged };
  } catch (e) {
    out.ifModifiedSince = { error: e.errorCode || e.name, status: e.statusCode };
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.log(JSON.stringify({ error: String((e && e.stack) || e) }));
  process.exit(1);
});
