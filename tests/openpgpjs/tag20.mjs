// OpenPGP.js 5 writes GnuPG's "AEAD Encrypted Data" packet (tag 20, rfc4880bis) to keys that
// announce AEAD, as OpenPGP.js 5 makes them with aeadProtect. Used by the tests to get such
// messages from another implementation than rnp and GnuPG; installed by scripts/test.sh.
//   node tag20.mjs genkey SECRET_OUT PUBLIC_OUT
//   node tag20.mjs encrypt eax|ocb CHUNK_SIZE_BYTE armored|binary PUBLIC_KEY < plaintext
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// OPENPGPJS5: the path of OpenPGP.js 5's ESM build.
const openpgp = await import(pathToFileURL(process.env.OPENPGPJS5).href);
const [command, ...args] = process.argv.slice(2);

if (command === 'genkey') {
  const [secretOut, publicOut] = args;
  const { privateKey, publicKey } = await openpgp.generateKey({
    userIDs: [{ name: 'OpenPGP.js 5 test', email: 'ojs5@cardecrypt.test' }],
    format: 'armored',
    config: { aeadProtect: true },
  });
  writeFileSync(secretOut, privateKey);
  writeFileSync(publicOut, publicKey);
} else if (command === 'encrypt') {
  const [mode, chunkSizeByte, format, keyFile] = args;
  const encryptionKeys = await openpgp.readKey({ armoredKey: readFileSync(keyFile, 'utf8') });
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const message = await openpgp.createMessage({ binary: new Uint8Array(Buffer.concat(chunks)) });
  const out = await openpgp.encrypt({
    message,
    encryptionKeys,
    format: format === 'binary' ? 'binary' : 'armored',
    config: {
      aeadProtect: true,
      preferredAEADAlgorithm: openpgp.enums.aead[mode],
      aeadChunkSizeByte: Number(chunkSizeByte),
    },
  });
  process.stdout.write(format === 'binary' ? Buffer.from(out) : out);
} else {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
