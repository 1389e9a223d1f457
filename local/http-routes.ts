/**
 * HTTP trigger routes as the Functions host reads them (ASP.NET route templates): literal segments
 * match case-insensitively, `{name}` takes one segment, `{name?}` may be left off at the end,
 * `{name:int}` (and alpha, bool, guid, long, double) constrain a segment, `{*rest}` takes the rest.
 */

export interface CompiledRoute {
  template: string;
  parameters: string[];
  /** Literal segments rank before parameters, catch-alls last (a rough form of ASP.NET's precedence). */
  precedence: number;
  match(path: string): Record<string, string> | undefined;
}

const CONSTRAINTS: Record<string, string> = {
  int: "-?\\d+",
  long: "-?\\d+",
  double: "-?\\d+(?:\\.\\d+)?",
  decimal: "-?\\d+(?:\\.\\d+)?",
  float: "-?\\d+(?:\\.\\d+)?",
  bool: "(?:true|false)",
  alpha: "[A-Za-z]+",
  guid: "[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
};

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function compileRoute(template: string): CompiledRoute {
  const trimmed = template.replace(/^\/+|\/+$/g, "");
  const parameters: string[] = [];
  let pattern = "";
  let precedence = 0;
  const segments = trimmed === "" ? [] : trimmed.split("/");
  segments.forEach((segment, index) => {
    const whole = /^\{(\*?)([A-Za-z_][\w]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}$/.exec(segment);
    if (whole) {
      const [, star, name = "", constraint, optional] = whole;
      parameters.push(name);
      if (star) {
        pattern += index === 0 ? "(.*)" : "(?:/(.*))?";
        precedence += 1000;
        return;
      }
      const body = (constraint && CONSTRAINTS[constraint.toLowerCase()]) ?? "[^/]+";
      const group = `(${body})`;
      if (optional) pattern += index === 0 ? `${group}?` : `(?:/${group})?`;
      else pattern += (index === 0 ? "" : "/") + group;
      precedence += 10;
      return;
    }
    // A literal segment, possibly with embedded parameters ("{name}.json").
    let literal = "";
    let rest = segment;
    for (;;) {
      const open = rest.indexOf("{");
      if (open < 0) {
        literal += escapeRegExp(rest);
        break;
      }
      const close = rest.indexOf("}", open);
      if (close < 0) throw new Error(`Route template '${template}' has an unclosed '{'.`);
      literal += escapeRegExp(rest.slice(0, open));
      const name =
        rest
          .slice(open + 1, close)
          .split(":")[0]
          ?.replace(/\?$/, "") ?? "";
      parameters.push(name);
      literal += "([^/]+?)";
      rest = rest.slice(close + 1);
    }
    pattern += (index === 0 ? "" : "/") + literal;
    precedence += 1;
  });
  const regex = new RegExp(`^${pattern}/?$`, "i");
  return {
    template,
    parameters,
    precedence,
    match(path: string) {
      const found = regex.exec(path.replace(/^\/+/, ""));
      if (!found) return undefined;
      const params: Record<string, string> = {};
      parameters.forEach((name, i) => {
        const value = found[i + 1];
        if (value !== undefined) params[name] = decodeSegment(value);
      });
      return params;
    },
  };
}

/**
 * A route parameter decoded, or as sent when its percent-encoding is malformed: Azure's host passes
 * such a segment on (the function then answers it), where decodeURIComponent would throw.
 */
export function decodeSegment(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
