import { SecretClient } from "@azure/keyvault-secrets";
import { ConfigurationError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import type { KeyName } from "../rotation/model";
import { azureCall, OPERATIONS } from "./call";
import type { CloudProfile } from "./cloud";
import { armPacer } from "./pacing";

export const PUBLISH_TAG_NAMES = {
  storageAccountId: "keyturn-storage-account",
  /** Seed 004: a secret holding a Batch account's shared key names the Batch account here. */
  batchAccountId: "keyturn-batch-account",
  keyName: "keyturn-key-name",
  rotationId: "keyturn-rotation-id",
  time: "keyturn-time",
} as const;

/**
 * What a published version says about itself (DESIGN §2 step 4): which account and key, from which
 * rotation, when. `keyturn-time` defaults to the time of writing.
 */
export interface PublishTags {
  /** Exactly one of the two: the storage account, or the Batch account, whose key the secret holds. */
  "keyturn-storage-account"?: string;
  "keyturn-batch-account"?: string;
  "keyturn-key-name": KeyName;
  "keyturn-rotation-id": string;
  "keyturn-time"?: string;
  /** Microsoft's rotation sample's tags (shared/published-secret.ts). */
  CredentialId?: KeyName;
  ProviderAddress?: string;
  ValidityPeriodDays?: string;
}

/** A version's attributes besides its value and tags (shared/published-secret.ts computes them). */
export interface PublishAttributes {
  contentType?: string;
  /** The version's `exp`; Key Vault still returns an expired secret, so it is informational. */
  expiresOn?: Date;
}

/** A secret tagged `keyturn-storage-account`: keyturn keeps it holding a live key of that account. */
export interface PublishedSecret {
  name: string;
  storageAccountId: string;
  /** The key the current version was published from, when tagged. */
  keyName?: string;
}

/** Key Vault secrets keyturn publishes a storage key to. */
export interface SecretStore {
  /**
   * Enabled secrets of the vault tagged `keyturn-storage-account`. Listing needs the data action
   * Microsoft.KeyVault/vaults/secrets/readMetadata/action on the vault.
   */
  listPublished(vaultUrl: string): Promise<PublishedSecret[]>;
  /** Fingerprint of the secret's current version; undefined when the secret does not exist yet. */
  heldFingerprint(vaultUrl: string, secretName: string, salt: string): Promise<Fingerprint | undefined>;
  /** Writes a new version (apps reading "latest" move to it); returns its version id. */
  publish(
    vaultUrl: string,
    secretName: string,
    value: string,
    tags: PublishTags,
    attributes?: PublishAttributes,
  ): Promise<{ version: string }>;
}

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export class KeyVaultSecretStore implements SecretStore {
  private readonly clients = new Map<string, SecretClient>();

  constructor(private readonly profile: CloudProfile) {}

  private client(vaultUrl: string): SecretClient {
    const url = vaultUrlOf(vaultUrl);
    let client = this.clients.get(url);
    if (!client) {
      client = new SecretClient(url, this.profile.credential, {
        // The SDK checks that the challenge's resource matches the vault's domain, which only
        // *.vault.azure.net (and its sovereign twins) pass: the emulator's 127.0.0.1 vaults do not.
        disableChallengeResourceVerification: this.profile.name !== "AzureCloud",
        ...(this.profile.tlsCa !== undefined ? { tlsOptions: { ca: this.profile.tlsCa } } : {}),
        userAgentOptions: { userAgentPrefix: "keyturn" },
        // Key Vault calls get the same deadline as ARM's: a vault that never answers is a failure, not a hang.
        additionalPolicies: [{ policy: armPacer.deadlinePolicy, position: "perRetry" }],
      });
      this.clients.set(url, client);
    }
    return client;
  }

  async listPublished(vaultUrl: string): Promise<PublishedSecret[]> {
    return azureCall(OPERATIONS.listSecrets, vaultUrlOf(vaultUrl), async () => {
      const published: PublishedSecret[] = [];
      for await (const properties of this.client(vaultUrl).listPropertiesOfSecrets()) {
        // The key holder: a storage account, or a Batch account (seed 004; rotated only with --batch-keys).
        const storageAccountId =
          properties.tags?.[PUBLISH_TAG_NAMES.storageAccountId] ??
          properties.tags?.[PUBLISH_TAG_NAMES.batchAccountId];
        if (!storageAccountId || properties.enabled === false) continue;
        const keyName = properties.tags?.[PUBLISH_TAG_NAMES.keyName];
        published.push({ name: properties.name, storageAccountId, ...(keyName ? { keyName } : {}) });
      }
      return published;
    });
  }

  async heldFingerprint(
    vaultUrl: string,
    secretName: string,
    salt: string,
  ): Promise<Fingerprint | undefined> {
    const id = secretId(vaultUrl, secretName);
    try {
      const secret = await azureCall(OPERATIONS.getSecret, id, () =>
        this.client(vaultUrl).getSecret(secretName),
      );
      return secret.value ? fingerprint(secret.value, salt) : undefined;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    }
  }

  async publish(
    vaultUrl: string,
    secretName: string,
    value: string,
    tags: PublishTags,
    attributes: PublishAttributes = {},
  ): Promise<{ version: string }> {
    const id = secretId(vaultUrl, secretName);
    const secret = await azureCall(
      OPERATIONS.setSecret,
      id,
      () =>
        this.client(vaultUrl).setSecret(secretName, value, {
          tags: {
            ...tags,
            [PUBLISH_TAG_NAMES.time]: tags[PUBLISH_TAG_NAMES.time] ?? new Date().toISOString(),
          },
          ...(attributes.contentType !== undefined ? { contentType: attributes.contentType } : {}),
          ...(attributes.expiresOn !== undefined ? { expiresOn: attributes.expiresOn } : {}),
        }),
      [value],
    );
    return { version: secret.properties.version ?? "" };
  }
}

function vaultUrlOf(vaultUrl: string): string {
  let url: URL;
  try {
    url = new URL(vaultUrl);
  } catch {
    throw new ConfigurationError(
      "vaultUrl",
      `'${vaultUrl}' is not a Key Vault URL: use https://<vault>.vault.azure.net/`,
    );
  }
  if (url.protocol !== "https:") {
    throw new ConfigurationError(
      "vaultUrl",
      `'${vaultUrl}' is not a Key Vault URL: Key Vault is served over https`,
    );
  }
  return `${url.origin}/`;
}

/** The secret's id without a version, as consumers of kind keyVaultSecret are identified. */
export function secretId(vaultUrl: string, secretName: string): string {
  const base = vaultUrlOf(vaultUrl);
  if (!SECRET_NAME.test(secretName)) {
    throw new ConfigurationError(
      "secretName",
      `'${secretName}' is not a Key Vault secret name: use 1-127 letters, digits and dashes`,
    );
  }
  return `${base}secrets/${secretName}`;
}
