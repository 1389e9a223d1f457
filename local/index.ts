export { LocalHost } from "./host";
export type {
  FunctionInfo,
  HostKeys,
  HttpInvocationRequest,
  HttpInvocationResponse,
  InvocationInfo,
  LocalHostHooks,
  LocalHostOptions,
} from "./host";
export { ManualClock, RealClock, isManualClock } from "./clock";
export type { Clock, Cancel } from "./clock";
export { DurableEngine, InstanceExistsError, UnknownFunctionError, isTerminal } from "./replay";
export type {
  ActivityInfo,
  DurableHooks,
  EpisodeInfo,
  InstanceRecord,
  InstanceStatus,
  RecordedAction,
  ReplayResult,
  RuntimeStatus,
} from "./replay";
export { installFunctionsCore } from "./functions-core";
export { parseNcrontab, NcrontabError } from "../shared/ncrontab";
export type { Ncrontab } from "../shared/ncrontab";
export type { FunctionLogger, LogEntry } from "./worker";
