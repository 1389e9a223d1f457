import { createHash } from "node:crypto";
import {
  CORRELATION_PROPS,
  Measurement,
  MemorySink,
  Prop,
  REDACTED,
  createTelemetry,
  isSecretName,
  redactMeasurements,
  redactProperties,
  redactText,
} from "../../../shared/telemetry";

/** Deterministic "random" bytes, so a rare shape cannot make the suite flaky. */
let counter = 0;
function randomBytes(length: number, seed = `${counter++}`): Buffer {
  const chunks: Buffer[] = [];
  for (let i = 0; chunks.length * 32 < length; i++) {
    chunks.push(createHash("sha256").update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(chunks).subarray(0, length);
}

/** A storage account key as ARM returns it: 64 random bytes, 88 base64 characters. */
const storageKey = (): string => randomBytes(64).toString("base64");

const JWT =
  "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9." +
  "eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyIsImlzcyI6Imh0dHBzOi8vc3RzIn0." +
  "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJl";

const ACCOUNT_ID =
  "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared";

function expectGone(output: string, ...secrets: string[]): void {
  for (const secret of secrets) expect(output).not.toContain(secret);
  expect(output).toContain(REDACTED);
}

describe("redactText: key material is replaced where it stands", () => {
  it("removes an 88-character storage key on its own and inside a sentence", () => {
    for (let i = 0; i < 50; i++) {
      const key = storageKey();
      expect(redactText(key)).toBe(REDACTED);
      expectGone(redactText(`regenerated key1, new value ${key} (was rejected)`), key);
    }
  });

  it("removes any base64 of 40 characters or more, padded or not, standard or URL-safe", () => {
    // 30 bytes is exactly 40 characters with no padding: the case where only the shape can tell.
    for (const bytes of [30, 31, 32, 33, 45, 48, 64, 96]) {
      for (let i = 0; i < 500; i++) {
        const raw = randomBytes(bytes, `${bytes}:${i}`);
        for (const encoded of [raw.toString("base64"), raw.toString("base64url")]) {
          expectGone(redactText(`x ${encoded} y`), encoded);
        }
      }
    }
  });

  it("removes a %-encoded key (as it appears in URLs)", () => {
    const key = storageKey();
    expectGone(redactText(`https://example.test/?k=${encodeURIComponent(key)}`), encodeURIComponent(key));
  });

  it("keeps the connection string readable and drops only AccountKey", () => {
    const key = storageKey();
    const out = redactText(
      `DefaultEndpointsProtocol=https;AccountName=stmlshared;AccountKey=${key};EndpointSuffix=core.windows.net`,
    );
    expect(out).toBe(
      `DefaultEndpointsProtocol=https;AccountName=stmlshared;AccountKey=${REDACTED};EndpointSuffix=core.windows.net`,
    );
  });

  it("removes short secrets that only their label gives away", () => {
    expect(redactText("Server=x;Password=hunter2;")).toBe(`Server=x;Password=${REDACTED};`);
    expect(redactText("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=abc")).toBe(
      `Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=${REDACTED}`,
    );
    expect(redactText("grant_type=client_credentials&client_secret=s3cr3t~value&scope=x")).toBe(
      `grant_type=client_credentials&client_secret=${REDACTED}&scope=x`,
    );
  });

  it("removes a SAS signature, URL-encoded or not, and keeps the other SAS fields", () => {
    const sig = randomBytes(32).toString("base64");
    for (const value of [sig, encodeURIComponent(sig)]) {
      const url = `https://stmlshared.blob.core.windows.net/data?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=${value}`;
      const out = redactText(url);
      expect(out).not.toContain(value);
      expect(out).toContain(`sig=${REDACTED}`);
      expect(out).toContain("sp=rl&se=2030-01-01T00:00:00Z");
    }
    expect(redactText(`SharedAccessSignature=sv=2022-11-02&sig=${encodeURIComponent(sig)}`)).not.toContain(
      encodeURIComponent(sig),
    );
    // A short signature is still a signature.
    expect(redactText("?sv=1&sig=abc")).toBe(`?sv=1&sig=${REDACTED}`);
  });

  it("removes bearer tokens, JWTs and shared-key headers", () => {
    expectGone(redactText(`Authorization: Bearer ${JWT}`), JWT, "eyJ");
    expectGone(redactText(`token ${JWT} expired`), JWT);
    expectGone(redactText(`{"access_token":"${JWT}","expires_in":3599}`), JWT);
    expectGone(redactText("authorization: SharedKey stmlshared:Zm9vYmFy/K1+Zz09="), "Zm9vYmFy");
    expect(redactText("Authorization: Basic dXNlcjpwYXNz")).toBe(`Authorization: Basic ${REDACTED}`);
  });

  it("removes secret fields of the JSON bodies keyturn's APIs return", () => {
    const [k1, k2] = [storageKey(), storageKey()];
    const cases = [
      // Storage listKeys / regenerateKey
      `{"keys":[{"keyName":"key1","value":"${k1}","permissions":"FULL"},{"keyName":"key2","value":"${k2}"}]}`,
      // Batch listKeys
      `{"accountName":"batchmltrain","primary":"${k1}","secondary":"${k2}"}`,
      // ML datastores/listSecrets
      `{"secretsType":"AccountKey","key":"${k1}"}`,
      // ML workspaces/listKeys
      `{"userStorageKey":"${k1}","userStorageResourceId":"${ACCOUNT_ID}"}`,
      // Key Vault secret bundle
      `{"value":"${k1}","id":"https://kv-keyturn.vault.azure.net/secrets/stmlbatch-key/0123456789abcdef0123456789abcdef"}`,
    ];
    for (const body of cases) {
      const out = redactText(`Request failed: ${body}`);
      expect(out).not.toContain(k1);
      expect(out).not.toContain(k2);
    }
    // Short secrets too: here only the field name says what it is.
    expect(redactText(`{"clientSecret": "abc.def~1", "clientId":"x"}`)).toBe(
      `{"clientSecret": "${REDACTED}", "clientId":"x"}`,
    );
    expect(redactText(`{"value":"short"}`)).toBe(`{"value":"${REDACTED}"}`);
  });

  it("removes PEM private keys", () => {
    const pem = `-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc\n-----END PRIVATE KEY-----`;
    expect(redactText(`cert: ${pem} end`)).toBe(`cert: ${REDACTED} end`);
  });

  it("keeps what telemetry is for: ids, names, times, codes and fingerprints", () => {
    const kept = [
      ACCOUNT_ID,
      ACCOUNT_ID.toLowerCase(),
      "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/RG_ML-Prod.2024/providers/Microsoft.MachineLearningServices/workspaces/mlw-train/datastores/workspaceblobstore",
      "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stmlsharedlongname0123456",
      "https://management.azure.com/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared/regenerateKey?api-version=2025-08-01",
      "https://kv-keyturn.vault.azure.net/secrets/keyturnpublishedstoragekey/0123456789abcdef0123456789abcdef",
      "keyturn-account-stmlshared-0123456789abcdef",
      "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg01weu-prod/providers/Microsoft.Storage/storageAccounts/sa01prodweu",
      "training_data_2024_v2_blob_store_for_experiments_Standard_LRS",
      "rotation-2025-06-01T03:00:00.000Z-all",
      "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
      "a1b2c3d4e5f6",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "2025-06-01T03:00:00.000Z",
      "403 AuthorizationFailed: The client does not have authorization to perform action 'Microsoft.Storage/storageAccounts/regeneratekey/action'",
      "KEYTURN_MIN_KEY_AGE_DAYS_AND_SOME_MORE_WORDS_TO_BE_LONG",
      "azureml_globaldatasets_with_a_rather_long_datastore_name",
      "datastore workspaceblobstore did not verify: probe got 403 AuthenticationFailed",
      "key1,key2",
      "InvalidAuthenticationTokenTenantMismatchForThisSubscription",
      `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"`,
    ];
    for (const text of kept) expect(redactText(text)).toBe(text);
  });
});

describe("isSecretName", () => {
  it("recognizes the names secrets travel under, in any case or separator style", () => {
    for (const name of [
      "clientSecret",
      "client_secret",
      "CLIENT-SECRET",
      "accountKey",
      "storageAccountKey",
      "AccountKey",
      "value",
      "key",
      "keys",
      "primary",
      "secondary",
      "primaryKey",
      "userStorageKey",
      "sig",
      "sasToken",
      "accessToken",
      "refresh_token",
      "password",
      "connectionString",
      "AzureWebJobsStorage_connectionString",
      "authorization",
    ]) {
      expect([name, isSecretName(name)]).toEqual([name, true]);
    }
  });

  it("lets every name of the catalogue through", () => {
    for (const name of [...Object.values(Prop), ...Object.values(Measurement), ...CORRELATION_PROPS]) {
      expect([name, isSecretName(name)]).toEqual([name, false]);
    }
  });
});

describe("redactProperties / redactMeasurements", () => {
  it("replaces secret-named values whatever they hold, and stringifies the rest", () => {
    expect(
      redactProperties({
        clientSecret: "x",
        value: "anything",
        storageAccount: "stmlshared",
        dryRun: false,
        consumers: 3,
        skipped: undefined,
        nothing: null,
      }),
    ).toEqual({
      clientSecret: REDACTED,
      value: REDACTED,
      storageAccount: "stmlshared",
      dryRun: "false",
      consumers: "3",
    });
  });

  it("redacts inside values and caps their length", () => {
    const key = storageKey();
    const out = redactProperties({ error: `listKeys returned ${key}`, long: "a ".repeat(10000) });
    expect(out.error).toBe(`listKeys returned ${REDACTED}`);
    expect(out.long).toHaveLength(8192);
  });

  it("drops non-finite and secret-named measurements", () => {
    expect(
      redactMeasurements({ armCalls: 3, bad: Number.NaN, inf: Infinity, key1: 5, none: undefined }),
    ).toEqual({
      armCalls: 3,
    });
  });
});

describe("every item is redacted before any sink sees it", () => {
  it("events, metrics and traces carry no key material", () => {
    const sink = new MemorySink();
    const key = storageKey();
    const t = createTelemetry(
      { instanceId: "keyturn-account-stmlshared-0123456789abcdef" },
      { sinks: [sink] },
    );
    t.event("AccountStalled", {
      storageAccount: "stmlshared",
      storageAccountId: ACCOUNT_ID,
      subscriptionId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
      consumer: "workspaceblobstore",
      error: `datastore rejected AccountKey=${key}; body {"value":"${key}"}`,
      keyRegenerated: "key2",
    });
    t.metric("ArmCalls", 4, {
      storageAccount: "stmlshared",
      storageAccountId: ACCOUNT_ID,
      subscriptionId: `${key}`,
    });
    t.trace(`probe with ${key} failed; Authorization: Bearer ${JWT}`, "error", {
      accountKey: key,
      note: key,
    });
    const all = JSON.stringify(sink.items);
    expect(all).not.toContain(key);
    expect(all).not.toContain(JWT);
    expect(sink.items).toHaveLength(3);
    expect(sink.events("AccountStalled")[0]?.properties.error).toBe(
      `datastore rejected AccountKey=${REDACTED}; body {"value":"${REDACTED}"}`,
    );
  });
});
