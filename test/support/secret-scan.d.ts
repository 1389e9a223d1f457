/** Types for secret-scan.js (plain JS: Jest loads its reporters and global setup untransformed). */
export interface Ledger {
  digests: Set<string>;
  lengths: number[];
}
export interface KeyFound {
  /** The first 12 hex characters of the key's ledger digest; never the key. */
  key: string;
  encodings: string[];
  contexts: string[];
}
export interface ScanResult {
  files: number;
  bytes: number;
  keys: number;
  hits: (KeyFound & { file: string })[];
  ms: number;
}
export function readLedger(file: string | undefined): Ledger;
export function findKeys(text: string, ledger: Ledger): KeyFound[];
export function scanFiles(options: {
  ledger: Ledger;
  roots?: string[];
  changedUnder?: string[];
  since?: number;
  skip?: string[];
}): ScanResult;
