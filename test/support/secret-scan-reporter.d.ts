import type { ScanResult } from "./secret-scan";

/** The part of Jest's aggregated results the scan adds itself to. */
export interface Totals {
  numTotalTests: number;
  numTotalTestSuites: number;
  numPassedTests: number;
  numPassedTestSuites: number;
  numFailedTests: number;
  numFailedTestSuites: number;
  success: boolean;
  testResults: { failureMessage?: string | null; testResults: { status: string; title: string }[] }[];
}

/** Types for secret-scan-reporter.js (a Jest reporter, loaded untransformed). */
declare class SecretScanReporter {
  constructor(globalConfig: { rootDir: string }, options?: { env?: NodeJS.ProcessEnv; keep?: boolean });
  onRunComplete(contexts: unknown, results: Totals): void;
  static recordScan(results: Totals, scan: ScanResult, rootDir: string): void;
  static scanRun(root: string, rootDir: string, since: number): ScanResult & { root: string };
}
export = SecretScanReporter;
