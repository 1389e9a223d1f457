/**
 * Stand-in for `@azure/functions-core`, the module the Azure Functions Node.js worker injects into the
 * app's process. `@azure/functions` requires it lazily (on the first `app.*` registration, hook or
 * system log) and memoizes the answer: if the first attempt fails it switches to "test mode" for the
 * life of the process and every registration is silently dropped. So the stand-in has to be
 * resolvable before the app's entry point runs its first `app.*` call:
 *
 * - plain Node: `installFunctionsCore()` patches `Module._resolveFilename` so the bare specifier
 *   resolves to this very file (already in `require.cache`, hence the same instance);
 * - Jest: Jest resolves modules itself and never calls `Module._resolveFilename`, so a test file needs
 *   `jest.mock("@azure/functions-core", () => jest.requireActual("<path>/local/functions-core"),
 *   { virtual: true })` (or a `moduleNameMapper` entry). `jest.requireActual` hands back the instance of
 *   the test file's module registry, which is the one `local/host` imports.
 *
 * Everything here is process state on purpose: the worker's module is a singleton too.
 */
import Module from "node:module";

export const MODULE_NAME = "@azure/functions-core";

/** The worker's typed-data union; values travel between host and library in this form. */
export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  stream?: Uint8Array | null;
  http?: RpcHttpData | null;
  int?: number | null;
  double?: number | null;
  collectionBytes?: { bytes?: Uint8Array[] | null } | null;
  collectionString?: { string?: string[] | null } | null;
  collectionDouble?: { double?: number[] | null } | null;
  collectionSint64?: { sint64?: number[] | null } | null;
}

export interface RpcHttpCookie {
  name?: string | null;
  value?: string | null;
  domain?: { value?: string | null } | null;
  path?: { value?: string | null } | null;
  expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: "none" | "lax" | "strict" | "explicitNone" | null;
  maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  body?: RpcTypedData | null;
  params?: Record<string, string> | null;
  statusCode?: string | null;
  query?: Record<string, string> | null;
  enableContentNegotiation?: boolean | null;
  cookies?: RpcHttpCookie[] | null;
}

export interface RpcBindingInfo {
  type?: string | null;
  direction?: "in" | "out" | "inout" | null;
  dataType?: string | null;
  [property: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, RpcBindingInfo>;
  retryOptions?: unknown;
  [property: string]: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

export type RpcLogLevel = "trace" | "debug" | "information" | "warning" | "error" | "critical" | "none";
export type RpcLogCategory = "user" | "system" | "customMetric";

export interface RpcParameterBinding {
  name?: string | null;
  data?: RpcTypedData | null;
}

export interface RpcInvocationRequest {
  invocationId?: string | null;
  functionId?: string | null;
  inputData?: RpcParameterBinding[] | null;
  triggerMetadata?: Record<string, RpcTypedData> | null;
  traceContext?: unknown;
  retryContext?: unknown;
}

export interface RpcInvocationResponse {
  invocationId?: string | null;
  outputData?: RpcParameterBinding[] | null;
  returnValue?: RpcTypedData | null;
}

export interface CoreInvocationContext {
  invocationId: string;
  request: RpcInvocationRequest;
  metadata: FunctionMetadata;
  state?: "preInvocationHooks" | "postInvocationHooks" | "invocation";
  log(level: RpcLogLevel, category: RpcLogCategory, message: string): void;
}

export interface InvocationArguments {
  context: unknown;
  inputs: unknown[];
}

export interface InvocationModel {
  getArguments(): Promise<InvocationArguments>;
  invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreContext: CoreInvocationContext): InvocationModel;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

export type HookCallback = (context: Record<string, unknown>) => void | Promise<void>;

/** Same contract as the worker's: `from` combines, `dispose` runs the callback once. */
export class Disposable {
  #callOnDispose: (() => unknown) | undefined;

  static from(...likes: { dispose: () => unknown }[]): Disposable {
    return new Disposable(() => {
      for (const like of likes) like.dispose();
    });
  }

  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }

  dispose(): unknown {
    const callback = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return callback?.();
  }
}

/** What the host knows about one registered function. */
export interface Registration {
  name: string;
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  /** The trigger binding's name and type (the one binding whose type ends in `Trigger`). */
  triggerName: string;
  triggerType: string;
  trigger: RpcBindingInfo;
}

export type LogSink = (level: RpcLogLevel, category: RpcLogCategory, message: string) => void;

// The worker reports its own version; the library only checks that `log` exists for newer features.
export const version = "4.0.0-keyturn-local";
export const hostVersion = "4.1000.0-keyturn-local";

const registrations = new Map<string, Registration>();
const hooks = new Map<string, HookCallback[]>();
let programmingModel: ProgrammingModel | undefined;
let logSink: LogSink | undefined;
let capture: Registration[] | undefined;

export function registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
  const entry = Object.entries(metadata.bindings).find(([, b]) => /trigger$/i.test(b.type ?? ""));
  if (!entry) throw new Error(`Function "${metadata.name}" has no trigger binding.`);
  const [triggerName, trigger] = entry;
  const registration: Registration = {
    name: metadata.name,
    metadata,
    callback,
    triggerName,
    triggerType: trigger.type ?? "",
    trigger,
  };
  registrations.set(metadata.name, registration);
  capture?.push(registration);
  return new Disposable(() => {
    if (registrations.get(metadata.name) === registration) registrations.delete(metadata.name);
  });
}

export function setProgrammingModel(model: ProgrammingModel): void {
  programmingModel = model;
}

export function getProgrammingModel(): ProgrammingModel {
  if (!programmingModel) {
    throw new Error("No programming model is set: the app has not loaded @azure/functions yet.");
  }
  return programmingModel;
}

export function registerHook(hookName: string, callback: HookCallback): Disposable {
  const list = hooks.get(hookName) ?? [];
  list.push(callback);
  hooks.set(hookName, list);
  return new Disposable(() => {
    const current = hooks.get(hookName);
    const index = current?.indexOf(callback) ?? -1;
    if (current && index >= 0) current.splice(index, 1);
  });
}

export function log(level: RpcLogLevel, category: RpcLogCategory, message: string): void {
  if (logSink) logSink(level, category, message);
  else if (level === "error" || level === "critical" || level === "warning") console.error(message);
}

// ---- host side (not part of the worker's API) ----

export function hasProgrammingModel(): boolean {
  return programmingModel !== undefined;
}

export function getRegistrations(): Registration[] {
  return [...registrations.values()];
}

export function getHooks(hookName: string): HookCallback[] {
  return [...(hooks.get(hookName) ?? [])];
}

export function setLogSink(sink: LogSink | undefined): void {
  logSink = sink;
}

/** Runs `load` and returns the registrations it made (nested captures are not supported). */
export function captureRegistrations(load: () => void): Registration[] {
  if (capture) throw new Error("captureRegistrations is not re-entrant");
  const captured: Registration[] = [];
  capture = captured;
  try {
    load();
  } finally {
    capture = undefined;
  }
  return captured;
}

interface ModuleInternals {
  _resolveFilename(request: string, parent: unknown, ...rest: unknown[]): string;
}

let installed = false;

/**
 * Makes `require("@azure/functions-core")` resolve to this module in plain Node. Idempotent. Has no
 * effect inside Jest (see the file comment).
 */
export function installFunctionsCore(): void {
  if (installed) return;
  const internals = Module as unknown as ModuleInternals;
  const original = internals._resolveFilename.bind(Module);
  const self = __filename;
  internals._resolveFilename = (request: string, parent: unknown, ...rest: unknown[]): string =>
    request === MODULE_NAME ? self : original(request, parent, ...rest);
  installed = true;
}
