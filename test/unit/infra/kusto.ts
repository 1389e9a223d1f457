/**
 * Kusto's own parser and semantic analyzer (@kusto/language-service-next, the Kusto.Language
 * library compiled to JavaScript with Bridge.NET), wrapped for the infra checks: parse a query,
 * report its diagnostics, and read from its syntax tree what it depends on in keyturn's telemetry.
 *
 * The package has no module exports: its two scripts define the globals `Bridge`, `System` and
 * `Kusto`, the second needing the first. Only the few members used here are typed below.
 */

/* eslint-disable @typescript-eslint/no-require-imports -- the package is two scripts run for their globals */
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");
/* eslint-enable @typescript-eslint/no-require-imports */

/** A .NET IReadOnlyList as Bridge.NET exposes it. */
interface List<T> {
  Count: number;
  getItem(index: number): T;
}

interface KDiagnostic {
  Code: string;
  Severity: string;
  Message: string;
  HasLocation: boolean;
  Start: number;
  Length: number;
}

interface KSymbol {
  Name: string;
  Kind: number;
}

interface KTable extends KSymbol {
  Columns: List<KSymbol>;
  WithName(name: string): KTable;
}

/** A syntax element (node or token); the optional members exist on the node kinds that have them. */
interface KNode {
  Kind: number;
  IsToken: boolean;
  ChildCount: number;
  GetChild(index: number): KNode | null;
  TextStart: number;
  Width: number;
  ReferencedSymbol?: KSymbol | null;
  IsLiteral?: boolean;
  LiteralValue?: unknown;
  SimpleName?: string;
  Expression?: KNode | null;
  Selector?: KNode | null;
  Left?: KNode | null;
  Right?: KNode | null;
  Name?: KNode | null;
  ArgumentList?: KNode | null;
}

interface KCode {
  Syntax: KNode;
  GetDiagnostics(): List<KDiagnostic>;
  GetSyntaxDiagnostics(): List<KDiagnostic>;
}

interface KGlobalState {
  WithDatabase(database: unknown): KGlobalState;
}

/** The syntax kinds this file looks for (checked to exist when the file loads). */
const KIND_NAMES = [
  "BangTildeExpression",
  "BracketedExpression",
  "ElementExpression",
  "EqualExpression",
  "EqualTildeExpression",
  "FunctionCallExpression",
  "InCsExpression",
  "InExpression",
  "NameReference",
  "NotEqualExpression",
  "NotInCsExpression",
  "NotInExpression",
  "ParenthesizedExpression",
  "PathExpression",
  "StringLiteralExpression",
] as const;
type SyntaxKindName = (typeof KIND_NAMES)[number];

interface KustoLanguage {
  KustoCode: {
    Parse(text: string, globals?: KGlobalState): KCode;
    ParseAndAnalyze(text: string, globals?: KGlobalState): KCode;
  };
  GlobalState: { Default: KGlobalState };
  Syntax: { SyntaxKind: Record<SyntaxKindName, number> };
  Symbols: {
    SymbolKind: Record<"Table", number>;
    TableSymbol: { From(schema: string): KTable };
    DatabaseSymbol: { ctor: new (name: string, members: KSymbol[]) => unknown };
  };
}

const K = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
const SK = K.Syntax.SyntaxKind;
const SYMBOL = K.Symbols.SymbolKind;
for (const kind of [...KIND_NAMES.map((n) => SK[n]), SYMBOL.Table]) {
  if (typeof kind !== "number") throw new Error("@kusto/language-service-next lacks a kind this file uses");
}

function items<T>(list: List<T> | null | undefined): T[] {
  const out: T[] = [];
  for (let i = 0; i < (list?.Count ?? 0); i++) out.push(list!.getItem(i));
  return out;
}

/**
 * The Application Insights tables as the resource's (classic) schema has them: what alert rules
 * scoped to the component and workbooks of `microsoft.insights/components` query. keyturn writes
 * to customEvents and customMetrics (and traces); the others are here so a query reading them
 * resolves and the cross-check can say that keyturn puts nothing there.
 */
const CONTEXT =
  "operation_Name:string, operation_Id:string, operation_ParentId:string, operation_SyntheticSource:string, " +
  "session_Id:string, user_Id:string, user_AuthenticatedId:string, user_AccountId:string, " +
  "application_Version:string, client_Type:string, client_Model:string, client_OS:string, client_IP:string, " +
  "client_City:string, client_StateOrProvince:string, client_CountryOrRegion:string, client_Browser:string, " +
  "cloud_RoleName:string, cloud_RoleInstance:string, appId:string, appName:string, iKey:string, " +
  "sdkVersion:string, itemId:string, itemCount:int";
const APP_INSIGHTS_TABLES: Record<string, string> = {
  customEvents:
    "timestamp:datetime, name:string, itemType:string, customDimensions:dynamic, customMeasurements:dynamic",
  customMetrics:
    "timestamp:datetime, name:string, itemType:string, value:real, valueCount:int, valueSum:real, valueMin:real, " +
    "valueMax:real, valueStdDev:real, customDimensions:dynamic",
  traces: "timestamp:datetime, message:string, severityLevel:int, itemType:string, customDimensions:dynamic",
  requests:
    "timestamp:datetime, id:string, name:string, url:string, success:bool, resultCode:string, duration:real, " +
    "performanceBucket:string, itemType:string, customDimensions:dynamic, customMeasurements:dynamic",
  dependencies:
    "timestamp:datetime, id:string, target:string, type:string, name:string, data:string, success:bool, " +
    "resultCode:string, duration:real, performanceBucket:string, itemType:string, customDimensions:dynamic, " +
    "customMeasurements:dynamic",
  exceptions:
    "timestamp:datetime, problemId:string, handledAt:string, type:string, message:string, assembly:string, " +
    "method:string, outerType:string, outerMessage:string, outerMethod:string, innermostType:string, " +
    "innermostMessage:string, details:dynamic, severityLevel:int, itemType:string, customDimensions:dynamic, " +
    "customMeasurements:dynamic",
};
const TABLES = Object.entries(APP_INSIGHTS_TABLES).map(([name, columns]) =>
  K.Symbols.TableSymbol.From(`(${columns}, ${CONTEXT})`).WithName(name),
);
const GLOBALS = K.GlobalState.Default.WithDatabase(new K.Symbols.DatabaseSymbol.ctor("appinsights", TABLES));

export interface KqlDiagnostic {
  code: string;
  severity: string;
  message: string;
  /** The text the diagnostic points at. */
  at: string;
}

function diagnostics(text: string, list: List<KDiagnostic>): KqlDiagnostic[] {
  return items(list).map((d) => ({
    code: d.Code,
    severity: d.Severity,
    message: d.Message,
    at: d.HasLocation ? text.substr(d.Start, d.Length) : "",
  }));
}

/** What Kusto's parser rejects in `text`: syntax errors only, no schema involved. */
export function syntaxErrors(text: string): KqlDiagnostic[] {
  return diagnostics(text, K.KustoCode.Parse(text).GetSyntaxDiagnostics()).filter(
    (d) => d.severity === "Error",
  );
}

/**
 * Syntax and semantic errors of `text` run against the Application Insights tables: unknown
 * tables, columns and functions, wrong argument types, and whatever the parser rejects.
 */
export function analysisErrors(text: string): KqlDiagnostic[] {
  return diagnostics(text, K.KustoCode.ParseAndAnalyze(text, GLOBALS).GetDiagnostics()).filter(
    (d) => d.severity === "Error",
  );
}

export const formatDiagnostic = (d: KqlDiagnostic): string => `${d.code} ${d.message} (at "${d.at}")`;

/** What a query reads of keyturn's telemetry, found in its analyzed syntax tree. */
export interface KqlReferences {
  /** Application Insights tables the query reads. */
  tables: string[];
  /** Columns of those tables it reads (`timestamp`, `valueMax`, ...). */
  columns: string[];
  /** String values the `name` column is compared with (`==`, `!=`, `=~`, `!~`, `in`, `!in`, ...). */
  names: string[];
  /** Keys of `customDimensions["x"]` / `customDimensions.x`. */
  dimensions: string[];
  /** Keys of `customMeasurements["x"]` / `customMeasurements.x`. */
  measurements: string[];
  /** `customDimensions` keys compared with a string (possibly through `tostring()`), and the string. */
  comparisons: { property: string; value: string }[];
  /** Bag accesses whose key is not a literal (the cross-check cannot follow them). */
  opaque: string[];
}

const EQUALITY = new Set([
  SK.EqualExpression,
  SK.NotEqualExpression,
  SK.EqualTildeExpression,
  SK.BangTildeExpression,
]);
const MEMBERSHIP = new Set([SK.InExpression, SK.InCsExpression, SK.NotInExpression, SK.NotInCsExpression]);
const BAGS = new Set(["customDimensions", "customMeasurements"]);

function children(node: KNode): KNode[] {
  const out: KNode[] = [];
  for (let i = 0; i < node.ChildCount; i++) {
    const child = node.GetChild(i);
    if (child) out.push(child);
  }
  return out;
}

function walk(node: KNode, visit: (n: KNode) => void): void {
  if (node.IsToken) return;
  visit(node);
  for (const child of children(node)) walk(child, visit);
}

function stringLiteral(node: KNode | null | undefined): string | undefined {
  return node && node.Kind === SK.StringLiteralExpression && typeof node.LiteralValue === "string"
    ? node.LiteralValue
    : undefined;
}

const isName = (node: KNode | null | undefined, name: string): boolean =>
  node?.Kind === SK.NameReference && node.SimpleName === name;

/** `bag["key"]`, `bag.key` or `bag['key']` on customDimensions/customMeasurements. */
function bagAccess(node: KNode | null | undefined): { bag: string; key: string | undefined } | undefined {
  if (!node) return undefined;
  if (node.Kind === SK.ParenthesizedExpression) return bagAccess(node.Expression);
  if (node.Kind !== SK.ElementExpression && node.Kind !== SK.PathExpression) return undefined;
  const bag = node.Expression?.SimpleName;
  if (!bag || !BAGS.has(bag) || node.Expression?.Kind !== SK.NameReference) return undefined;
  const selector = node.Selector;
  if (node.Kind === SK.PathExpression) {
    return { bag, key: selector?.Kind === SK.NameReference ? selector.SimpleName : stringLiteral(selector) };
  }
  const inner = selector?.Kind === SK.BracketedExpression ? selector.Expression : selector;
  return { bag, key: stringLiteral(inner) };
}

/** The bag access in `x`, `tostring(x)` or `(x)`: what a comparison with a string is about. */
function comparedDimension(node: KNode | null | undefined): string | undefined {
  if (!node) return undefined;
  if (node.Kind === SK.FunctionCallExpression && isName(node.Name, "tostring")) {
    const args = listElements(node.ArgumentList);
    return args.length === 1 ? comparedDimension(args[0]) : undefined;
  }
  const access = bagAccess(node);
  return access?.bag === "customDimensions" ? access.key : undefined;
}

/** The expressions of an ExpressionList (`(a, b, c)`): its separated elements, without the commas. */
function listElements(list: KNode | null | undefined): KNode[] {
  if (!list) return [];
  const separated = children(list).find((c) => !c.IsToken);
  return separated
    ? children(separated).flatMap((element) => children(element).filter((c) => !c.IsToken))
    : [];
}

const unique = (list: string[]): string[] => [...new Set(list)];

/** Reads the analyzed syntax tree of `query` (see `KqlReferences`). */
export function kqlReferences(query: string): KqlReferences {
  const code = K.KustoCode.ParseAndAnalyze(query, GLOBALS);
  const declaredColumns = new Set(TABLES.flatMap((t) => items(t.Columns)));
  const refs: KqlReferences = {
    tables: [],
    columns: [],
    names: [],
    dimensions: [],
    measurements: [],
    comparisons: [],
    opaque: [],
  };
  walk(code.Syntax, (node) => {
    if (node.Kind === SK.NameReference) {
      const symbol = node.ReferencedSymbol;
      if (symbol?.Kind === SYMBOL.Table && TABLES.includes(symbol as KTable)) refs.tables.push(symbol.Name);
      if (symbol && declaredColumns.has(symbol)) refs.columns.push(symbol.Name);
    }
    const access = bagAccess(node);
    if (access && access.key === undefined) {
      refs.opaque.push(query.substr(node.TextStart, node.Width));
    } else if (access?.key !== undefined) {
      (access.bag === "customDimensions" ? refs.dimensions : refs.measurements).push(access.key);
    }
    if (EQUALITY.has(node.Kind)) {
      for (const [side, other] of [
        [node.Left, node.Right],
        [node.Right, node.Left],
      ] as const) {
        const value = stringLiteral(other);
        if (value === undefined) continue;
        if (isName(side, "name")) refs.names.push(value);
        const property = comparedDimension(side);
        if (property !== undefined) refs.comparisons.push({ property, value });
      }
    }
    if (MEMBERSHIP.has(node.Kind)) {
      const values = listElements(node.Right).map(stringLiteral);
      const strings = values.filter((v): v is string => v !== undefined);
      if (isName(node.Left, "name")) refs.names.push(...strings);
      const property = comparedDimension(node.Left);
      if (property !== undefined) refs.comparisons.push(...strings.map((value) => ({ property, value })));
    }
  });
  return {
    ...refs,
    tables: unique(refs.tables),
    columns: unique(refs.columns),
    names: unique(refs.names),
    dimensions: unique(refs.dimensions),
    measurements: unique(refs.measurements),
  };
}
