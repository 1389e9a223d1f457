import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Every KQL query infra/ deploys, as Azure receives it: the alert rules of alerts.json (with their
 * `{placeholders}` replaced the way alerts.bicep does, by main.bicep's default for the parameter of
 * that name), the query items of workbook.json, and any query written inline in a Bicep file.
 */

const ROOT = join(__dirname, "..", "..", "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");

export interface InfraQuery {
  /** Where it lives: `alerts.json`, `workbook.json` or a Bicep file. */
  source: string;
  /** The alert's or workbook item's name (the item's title too, for the workbook). */
  name: string;
  query: string;
}

export const bicepFiles = (): string[] => [
  "infra/main.bicep",
  ...readdirSync(join(ROOT, "infra/modules"))
    .filter((f) => f.endsWith(".bicep"))
    .map((f) => `infra/modules/${f}`),
];

/** main.bicep's default for `param <name> <type> = <value>`, as Bicep's `string()` would write it. */
function parameterDefault(name: string): string | undefined {
  const match = new RegExp(`^param ${name} (\\w+) = (.+)$`, "m").exec(read("infra/main.bicep"));
  if (!match) return undefined;
  const value = (match[2] ?? "").trim();
  return /^'.*'$/.test(value) ? value.slice(1, -1) : value;
}

export function withPlaceholdersReplaced(query: string): string {
  return query.replace(/\{([A-Za-z]+)\}/g, (whole, name: string) => parameterDefault(name) ?? whole);
}

/** Bicep string literals: `'...'` with its escapes, or a verbatim `'''...'''`. */
function bicepString(literal: string): string {
  if (literal.startsWith("'''")) return literal.slice(3, -3).replace(/^\r?\n/, "");
  const escapes: Record<string, string> = { n: "\n", r: "\r", t: "\t", "\\": "\\", "'": "'", $: "$" };
  return literal.slice(1, -1).replace(/\\(.)/g, (_, c: string) => escapes[c] ?? c);
}

/** `query:` properties in Bicep: the literal ones, and the expressions (which must use alerts.json). */
export function bicepQueryProperties(): { file: string; literal?: string; expression?: string }[] {
  return bicepFiles().flatMap((file) =>
    [...read(file).matchAll(/^\s*query:\s*('''[\s\S]*?'''|'(?:[^'\\\n]|\\.)*'|.*)$/gm)].map((m) => {
      const value = m[1] ?? "";
      return value.startsWith("'")
        ? { file, literal: bicepString(value) }
        : { file, expression: value.trim() };
    }),
  );
}

/** Every `query` string in the workbook, however deep (query items, parameters, groups), by item name. */
function workbookQueries(node: unknown, label: string, found: InfraQuery[]): InfraQuery[] {
  if (Array.isArray(node)) {
    for (const child of node) workbookQueries(child, label, found);
  } else if (node !== null && typeof node === "object") {
    const object = node as Record<string, unknown>;
    const here = typeof object.name === "string" ? object.name : label;
    if (typeof object.query === "string") {
      const title = typeof object.title === "string" ? ` (${object.title})` : "";
      found.push({ source: "workbook.json", name: `${here}${title}`, query: object.query });
    }
    for (const value of Object.values(object)) workbookQueries(value, here, found);
  }
  return found;
}

export function infraQueries(): InfraQuery[] {
  const alerts = (JSON.parse(read("infra/alerts.json")) as { alerts: { name: string; query: string }[] })
    .alerts;
  return [
    ...alerts.map((a) => ({ source: "alerts.json", name: a.name, query: withPlaceholdersReplaced(a.query) })),
    ...workbookQueries(JSON.parse(read("infra/workbook.json")), "workbook", []),
    ...bicepQueryProperties().flatMap(({ file, literal }, index) =>
      literal === undefined ? [] : [{ source: file, name: `query #${index + 1}`, query: literal }],
    ),
  ];
}
