// A web app's path through the dev loop, with the real Firebase JS SDK (run by tests/test_firebase_clients.py):
// upload to the built-in route with uploadBytes and uploadBytesResumable, follow each character's document with the
// client Firestore SDK until the function has settled it, then read back what the app would read.
//
// Usage: node upload_flow.mjs '<JSON settings>' (see tests/test_firebase_clients.py); prints one JSON line.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const settings = JSON.parse(process.argv[2]);

// Each Storage request the SDK sends (its Node build calls the global fetch): which upload protocol it used.
const sent = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init = {}) => {
  const headers = init.headers ?? {};
  if (String(url).includes("/v0/")) {
    sent.push({ method: init.method ?? "GET", command: headers["X-Goog-Upload-Command"] ?? null,
      protocol: headers["X-Goog-Upload-Protocol"] ?? null });
  }
  return realFetch(url, init);
};
// The SDK lives in the setup script's npm cache, not beside this file.
const require = createRequire(join(settings.clients, "package.json"));
const { initializeApp } = require("firebase/app");
const storageSdk = require("firebase/storage");
const { connectFirestoreEmulator, doc, getFirestore, onSnapshot, setDoc, terminate } = require("firebase/firestore");
const { connectStorageEmulator, getStorage, ref } = storageSdk;

const app = initializeApp({ projectId: settings.project, storageBucket: settings.bucket, apiKey: "demo-key" });
const storage = getStorage(app);
connectStorageEmulator(storage, "127.0.0.1", settings.storagePort);
const db = getFirestore(app);
connectFirestoreEmulator(db, "127.0.0.1", settings.firestorePort);

const sha256 = (bytes) => createHash("sha256").update(Buffer.from(bytes)).digest("hex");

/** The manifest at visuals.showcase once its status is complete or failed. */
function settled(characterId) {
  return new Promise((resolve, reject) => {
    const stop = onSnapshot(
      doc(db, "characters", characterId),
      (snapshot) => {
        const manifest = snapshot.data()?.visuals?.showcase;
        if (manifest && ["complete", "failed"].includes(manifest.status)) {
          stop();
          resolve(manifest);
        }
      },
      reject,
    );
  });
}

/** Upload one image the way `how` says, and time it until its document is settled. */
async function uploadAndFollow(characterId, file, how) {
  await setDoc(doc(db, "characters", characterId), { meta: { userId: settings.uid } }); // the route waits for it
  const path = `raw-uploads/${settings.uid}/${characterId}/${file.split("/").pop()}`;
  const data = new Uint8Array(readFileSync(file));
  const metadata = { contentType: "image/jpeg", customMetadata: { madeBy: how } };
  const started = performance.now();
  const following = settled(characterId);
  const first = sent.length;
  const uploaded =
    how === "uploadBytes"
      ? (await storageSdk.uploadBytes(ref(storage, path), data, metadata)).metadata
      : await resumable(ref(storage, path), data, metadata);
  const requests = sent.slice(first);
  const manifest = await following;
  return { path, uploaded: pick(uploaded), requests, manifest, seconds: (performance.now() - started) / 1000 };
}

/** uploadBytesResumable to its end; its metadata. */
function resumable(reference, data, metadata) {
  return new Promise((resolve, reject) => {
    const task = storageSdk.uploadBytesResumable(reference, data, metadata);
    task.on("state_changed", null, reject, () => resolve(task.snapshot.metadata));
  });
}

function pick(metadata) {
  const { fullPath, bucket, size, contentType, customMetadata, generation } = metadata;
  return { fullPath, bucket, size, contentType, customMetadata, generation };
}

/** GET a URL as a browser would; its status and the bytes' SHA-256. */
async function fetched(url) {
  const response = await fetch(url);
  return { status: response.status, sha256: sha256(await response.arrayBuffer()) };
}

/** An SDK call's error code and HTTP status, or null if it succeeded. */
async function failure(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return { code: error.code, status: error.status, serverResponse: error.customData?.serverResponse ?? null };
  }
}

const results = {};
try {
  const small = await uploadAndFollow(settings.characters[0], settings.small, "uploadBytes");
  const large = await uploadAndFollow(settings.characters[1], settings.large, "uploadBytesResumable");
  results.small = small;
  results.large = large;

  // The large variant two ways: the URL the function recorded, and the one getDownloadURL gives.
  const variant = large.manifest.variants.large;
  const sdkUrl = await storageSdk.getDownloadURL(ref(storage, variant.path));
  results.download = {
    manifestUrl: variant.url,
    sdkUrl,
    viaManifest: await fetched(variant.url),
    viaSdk: await fetched(sdkUrl),
    viaGetBytes: sha256(await storageSdk.getBytes(ref(storage, variant.path))),
  };

  const source = ref(storage, small.path);
  results.metadata = pick(await storageSdk.getMetadata(source));
  const updated = await storageSdk.updateMetadata(source, { cacheControl: "no-cache", customMetadata: { seen: "yes" } });
  results.updated = { cacheControl: updated.cacheControl, customMetadata: updated.customMetadata };
  const sourceUrl = await storageSdk.getDownloadURL(source);
  results.sourceUrl = sourceUrl;

  const outputs = await storageSdk.list(ref(storage, variant.path.split("/").slice(0, -1).join("/")), { maxResults: 2 });
  const everything = await storageSdk.listAll(ref(storage, `raw-uploads/${settings.uid}`));
  results.list = {
    firstPage: outputs.items.map((item) => item.fullPath),
    hasNextPage: Boolean(outputs.nextPageToken),
    folders: everything.prefixes.map((prefix) => prefix.fullPath),
  };

  await storageSdk.deleteObject(source);
  results.afterDelete = {
    metadata: await failure(() => storageSdk.getMetadata(source)),
    oldUrl: (await fetched(sourceUrl)).status,
  };

  // What the front does not serve answers at once: the SDK reports it instead of retrying for minutes.
  const elsewhere = getStorage(app, "gs://no-such-bucket");
  connectStorageEmulator(elsewhere, "127.0.0.1", settings.storagePort);
  results.unserved = {
    otherBucket: await failure(() => storageSdk.uploadBytes(ref(elsewhere, "x.jpg"), new Uint8Array([1]))),
    createToken: await (async () => {
      const url = `http://127.0.0.1:${settings.storagePort}/v0/b/${settings.bucket}/o/${encodeURIComponent(variant.path)}?create_token=true`;
      const response = await fetch(url, { method: "POST" });
      return { status: response.status, body: await response.json() };
    })(),
  };
} catch (error) {
  results.error = { message: String(error?.message ?? error), code: error?.code, stack: error?.stack };
} finally {
  await terminate(db);
}
process.stdout.write(`${JSON.stringify(results)}\n`);
process.exit(0);
