// Encrypts standard input with OpenPGP.js to the armored public keys named on the command
// line: `node encrypt.mjs v2|v1 armored|binary KEY...`; or makes a key (`genkey...`). v2 is SEIPD v2 with OCB (RFC 9580),
// as OpenPGP.js writes it with aeadProtect. Used by the tests to get messages from another
// implementation at test time; OpenPGP.js itself is installed by scripts/test.sh.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// OPENPGPJS: the path of OpenPGP.js's ESM build (node_modules/openpgp/dist/node/openpgp.mjs).
const openpgp = await import(pathToFileURL(process.env.OPENPGPJS).href);

const [version, format, ...keyFiles] = process.argv.slice(2);
if (version.startsWith('genkey')) {
  // `node encrypt.mjs genkey[-x25519|-v6] SECRET_OUT PUBLIC_OUT`: `genkey` is a v4 key with
  // legacy Curve25519 whose features announce SEIPD v2, as OpenPGP.js makes it with
  // aeadProtect; `genkey-x25519` a v4 key with RFC 9580's Ed25519 and X25519 (algorithms 27
  // and 25) that announces SEIPD v1 only; `genkey-v6` the same as a v6 key, with SEIPD v2.
  const { writeFileSync } = await import('node:fs');
  const native = version !== 'genkey';
  const { privateKey, publicKey } = await openpgp.generateKey({
    userIDs: [{ name: 'OpenPGP.js test', email: 'ojs@cardecrypt.test' }],
    format: 'armored',
    ...(native ? { type: 'curve25519' } : {}),
    config: { aeadProtect: version !== 'genkey-x25519', v6Keys: version === 'genkey-v6' },
  });
  writeFileSync(format, privateKey);
  writeFileSync(keyFiles[0], publicKey);
  process.exit(0);
}
const encryptionKeys = await Promise.all(
  keyFiles.map((f) => openpgp.readKey({ armoredKey: readFileSync(f, 'utf8') })));
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const message = await openpgp.createMessage({ binary: new Uint8Array(Buffer.concat(chunks)) });
const config = version === 'v2'
  ? { aeadProtect: true, preferredAEADAlgorithm: openpgp.enums.aead.ocb }
  : { aeadProtect: false };
const out = await openpgp.encrypt({ message, encryptionKeys, format: format === 'binary' ? 'binary' : 'armored', config });
process.stdout.write(format === 'binary' ? Buffer.from(out) : out);
