import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { projectRoot } from "../../emulator/paths";

/**
 * No import cycles among the repository's own TypeScript files (issue 11, "one house style").
 *
 * Every static module reference counts: `import … from`, `import type … from`, `export … from`
 * (type-only too) and `import x = require(…)`. Type-only edges count because a cycle of types is
 * still two modules that cannot be understood, moved or tested one without the other. Calls to
 * `require()`, `import()` and `jest.requireActual()` inside function bodies are left out: they run
 * lazily, on purpose (the local host loads the app it is handed; tests load the stand-in they mock).
 */

const SKIP = new Set(["node_modules", "dist", "coverage", ".keyturn", ".git", ".ci"]);

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** The module specifiers a file references statically (see above for what counts). */
function staticSpecifiers(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const specifiers: string[] = [];
  const visit = (node: ts.Node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specifiers.push(node.moduleSpecifier.text);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      specifiers.push(node.moduleReference.expression.text);
    } else if (ts.isModuleDeclaration(node) && node.body) {
      ts.forEachChild(node.body, visit);
    }
  };
  ts.forEachChild(source, visit);
  return specifiers;
}

function resolveLocal(from: string, specifier: string, known: Set<string>): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, `${base}.d.ts`, join(base, "index.ts")]) {
    if (known.has(candidate)) return candidate;
  }
  return undefined;
}

/** file → the repository files it imports, keyed by paths relative to `root`. */
function importGraph(root: string): Map<string, string[]> {
  const files = sourceFiles(root);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = staticSpecifiers(file, readFileSync(file, "utf8"))
      .map((s) => resolveLocal(file, s, known))
      .filter((t): t is string => t !== undefined)
      .map((t) => relative(root, t));
    graph.set(relative(root, file), [...new Set(targets)]);
  }
  return graph;
}

/**
 * Every cycle's strongly connected component (Tarjan), each as one closed chain through it:
 * `a → b → … → a`. A file importing itself counts.
 */
function findCycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let next = 0;
  const strongConnect = (node: string) => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        strongConnect(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      const selfLoop = (graph.get(node) ?? []).includes(node);
      if (component.length > 1 || selfLoop) components.push(component);
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) strongConnect(node);
  return components.map((component) => chainThrough(graph, new Set(component)));
}

/** A closed path from the component's first file (sorted) back to it, staying inside the component. */
function chainThrough(graph: Map<string, string[]>, component: Set<string>): string[] {
  const start = [...component].sort()[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!;
    for (const target of graph.get(node) ?? []) {
      if (!component.has(target)) continue;
      if (target === start) {
        const path = [start];
        for (let at: string | undefined = node; at !== undefined && at !== start; at = previous.get(at))
          path.splice(1, 0, at);
        return [...path, start];
      }
      if (!previous.has(target)) {
        previous.set(target, node);
        queue.push(target);
      }
    }
  }
  return [start];
}

describe("import cycles", () => {
  it("finds none among the repository's TypeScript files", () => {
    const graph = importGraph(projectRoot());
    const cycles = findCycles(graph).map((chain) => chain.join(" → "));
    expect(cycles).toEqual([]);
  });

  it("walks the real sources, type-only imports and re-exports included", () => {
    const graph = importGraph(projectRoot());
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("local/index.ts")).toEqual(expect.arrayContaining(["local/host.ts", "local/replay.ts"]));
    expect(graph.get("emulator/index.ts")).toEqual(expect.arrayContaining(["emulator/admin.ts"]));
  });

  it("counts every static form of import and no lazy one", () => {
    const text = [
      'import a from "./a";',
      'import type { B } from "./b";',
      'import { type C } from "./c";',
      'export { d } from "./d";',
      'export type { E } from "./e";',
      'export * from "./f";',
      'import g = require("./g");',
      'import "./h";',
      'const lazy = () => require("./lazy");',
      'const dynamic = () => import("./dynamic");',
      'type T = typeof import("./typeof");',
    ].join("\n");
    expect(staticSpecifiers("x.ts", text)).toEqual(["./a", "./b", "./c", "./d", "./e", "./f", "./g", "./h"]);
  });

  it("reports a cycle as a closed chain, a self-import included, and nothing for a DAG", () => {
    const graph = new Map<string, string[]>([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts", "d.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", []],
      ["e.ts", ["e.ts"]],
    ]);
    expect(findCycles(graph)).toEqual([
      ["a.ts", "b.ts", "c.ts", "a.ts"],
      ["e.ts", "e.ts"],
    ]);
    expect(
      findCycles(
        new Map([
          ["a.ts", ["b.ts"]],
          ["b.ts", []],
        ]),
      ),
    ).toEqual([]);
  });
});
