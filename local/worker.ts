/**
 * Invokes a registered function the way the Node.js worker does, so the app's code runs through
 * `@azure/functions`' own invocation model (argument conversion, InvocationContext, extra inputs,
 * return-value conversion) and not through a shortcut that could hide a mismatch.
 */
import { randomUUID } from "node:crypto";
import {
  getHooks,
  getProgrammingModel,
  type CoreInvocationContext,
  type Registration,
  type RpcLogCategory,
  type RpcLogLevel,
  type RpcParameterBinding,
  type RpcInvocationResponse,
  type RpcTypedData,
} from "./functions-core";

export interface LogEntry {
  functionName: string;
  invocationId: string;
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
}

export type FunctionLogger = (entry: LogEntry) => void;

export interface InvokeRequest {
  inputData: RpcParameterBinding[];
  triggerMetadata?: Record<string, RpcTypedData>;
  invocationId?: string;
}

/** App-wide hook data, shared by every hook as the worker shares it. */
const appHookData: Record<string, unknown> = {};

export function getAppHookData(): Record<string, unknown> {
  return appHookData;
}

/**
 * Runs one invocation: `getInvocationModel` → `getArguments` → pre-invocation hooks → `invokeFunction`
 * → post-invocation hooks → `getResponse`. Rejects with the function's own error when it throws.
 */
export async function invokeRegistration(
  registration: Registration,
  request: InvokeRequest,
  logger: FunctionLogger,
): Promise<RpcInvocationResponse> {
  const invocationId = request.invocationId ?? randomUUID();
  const coreContext: CoreInvocationContext = {
    invocationId,
    metadata: registration.metadata,
    state: "invocation",
    request: {
      invocationId,
      functionId: registration.name,
      inputData: request.inputData,
      triggerMetadata: request.triggerMetadata ?? {},
    },
    log: (level, category, message) =>
      logger({ functionName: registration.name, invocationId, level, category, message }),
  };
  const model = getProgrammingModel().getInvocationModel(coreContext);
  const { context, inputs } = await model.getArguments();

  const hookData: Record<string, unknown> = {};
  const pre = {
    hookData,
    appHookData,
    invocationContext: context,
    inputs,
    functionCallback: registration.callback,
  };
  const preHooks = getHooks("preInvocation");
  if (preHooks.length > 0) {
    coreContext.state = "preInvocationHooks";
    for (const hook of preHooks) await hook(pre);
  }

  coreContext.state = "invocation";
  let result: unknown;
  let error: unknown;
  let failed = false;
  try {
    result = await model.invokeFunction(context, pre.inputs, pre.functionCallback);
  } catch (err) {
    failed = true;
    error = err;
  }

  const postHooks = getHooks("postInvocation");
  if (postHooks.length > 0) {
    coreContext.state = "postInvocationHooks";
    const post = { hookData, appHookData, invocationContext: context, inputs: pre.inputs, result, error };
    for (const hook of postHooks) await hook(post);
    result = post.result;
    error = post.error;
    failed = error !== undefined && error !== null;
  }
  if (failed) throw error;
  return model.getResponse(context, result);
}

/** Converts an RPC typed value back to a JS value (the inverse of the library's toRpcTypedData). */
export function fromRpcValue(data: RpcTypedData | null | undefined): unknown {
  if (!data) return undefined;
  if (data.json !== undefined && data.json !== null) return JSON.parse(data.json) as unknown;
  if (data.string !== undefined && data.string !== null) return data.string;
  if (data.int !== undefined && data.int !== null) return data.int;
  if (data.double !== undefined && data.double !== null) return data.double;
  if (data.bytes !== undefined && data.bytes !== null) return Buffer.from(data.bytes);
  return undefined;
}

/** The value of an invocation's return binding, as a JS value. */
export function returnValueOf(response: RpcInvocationResponse): unknown {
  return fromRpcValue(response.returnValue);
}
