// Owns binding: the global symbol table of a policy set (every declaration by name, across
// files), duplicate names, the `default unidentified` line, and rule ids (`@id` or
// `FILE:LINE`). Type checking is `check.ts`.
import type * as A from "../dsl/ast.js";
import { describePosition, diag, didYouMean, type Diagnostic } from "../dsl/diagnostics.js";
import type { PolicySource } from "./model.js";

export interface Symbol {
  readonly kind: A.RefKind;
  readonly decl: A.Declaration;
}

export interface BoundRule {
  readonly id: string;
  readonly idSpan: A.Span;
  readonly rule: A.Rule;
}

export interface Bindings {
  readonly symbols: ReadonlyMap<string, Symbol>;
  readonly defaultUnidentified: "allow" | "deny";
  readonly rules: readonly BoundRule[];
  readonly tests: readonly A.TestBlock[];
}

const article: Record<A.RefKind, string> = { workload: "workload", group: "group", net: "net", ports: "ports set", service: "service" };

export function describeKind(kind: A.RefKind): string {
  return article[kind];
}

/** Binds the files of one policy set; `files[i]` was parsed from `sources[i]`. */
export function bindPolicySet(sources: readonly PolicySource[], files: readonly A.PolicyFile[], diagnostics: Diagnostic[]): Bindings {
  const symbols = new Map<string, Symbol>();
  const rules: BoundRule[] = [];
  const tests: A.TestBlock[] = [];
  let defaultDecl: A.DefaultDecl | undefined;
  let defaultUnidentified: "allow" | "deny" = "allow";
  const ruleIds = new Map<string, A.Span>();

  files.forEach((file, index) => {
    const source = sources[index]!;
    for (const item of file.items) {
      switch (item.kind) {
        case "workload":
        case "group":
        case "net":
        case "ports":
        case "service": {
          const existing = symbols.get(item.name.name);
          if (existing !== undefined) {
            diagnostics.push(
              diag("DuplicateDeclaration", item.name.span, item.name.name, describeKind(existing.kind), describePosition(existing.decl.name.span, item.name.span.file)),
            );
          } else {
            symbols.set(item.name.name, { kind: item.kind, decl: item });
          }
          break;
        }
        case "default": {
          if (item.target.name !== "unidentified") {
            diagnostics.push(diag("InvalidDefault", item.target.span, `unknown default \`${item.target.name}\`; the only default is \`default unidentified allow;\` or \`default unidentified deny;\``));
            break;
          }
          if (item.value.name !== "allow" && item.value.name !== "deny") {
            diagnostics.push(
              diag("InvalidDefault", item.value.span, `\`default unidentified\` must be \`allow\` or \`deny\`, not \`${item.value.name}\`${didYouMean(item.value.name, ["allow", "deny"])}`),
            );
            break;
          }
          if (defaultDecl !== undefined) {
            diagnostics.push(diag("DuplicateDefault", item.span, describePosition(defaultDecl.span, item.span.file)));
            break;
          }
          defaultDecl = item;
          defaultUnidentified = item.value.name;
          break;
        }
        case "rule": {
          const idAnnotation = item.annotations.find((a) => a.name.name === "id");
          const id = idAnnotation?.value.value ?? `${source.relPath}:${item.span.line}`;
          const idSpan = idAnnotation?.value.span ?? item.span;
          if (idAnnotation !== undefined && id.trim() === "") {
            diagnostics.push(diag("EmptyAnnotationValue", idAnnotation.value.span, "id"));
          } else if (ruleIds.has(id)) {
            diagnostics.push(diag("DuplicateRuleId", idSpan, id, describePosition(ruleIds.get(id)!, idSpan.file)));
          } else {
            ruleIds.set(id, idSpan);
          }
          // Most rules have one annotation at most: no set of names for them.
          if (item.annotations.length > 1) {
            const seen = new Set<string>();
            for (const a of item.annotations) {
              if (seen.has(a.name.name)) diagnostics.push(diag("DuplicateAnnotation", a.span, a.name.name));
              seen.add(a.name.name);
            }
          }
          rules.push({ id, idSpan, rule: item });
          break;
        }
        case "test":
          tests.push(item);
          break;
      }
    }
  });
  return { symbols, defaultUnidentified, rules, tests };
}
