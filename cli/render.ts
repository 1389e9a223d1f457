import type { AccountReport, RotationReport } from "../shared/rotation";

/** A Mermaid flowchart of the plan: each storage account and the consumers that hold its keys. */
export function renderMermaid(report: RotationReport): string {
  const lines = ["flowchart LR"];
  const id = (prefix: string, n: number) => `${prefix}${n}`;
  let consumerCount = 0;
  report.accounts.forEach((account, i) => {
    const node = id("sa", i);
    lines.push(`  ${node}[("${escape(account.name)}<br/>${describeAccount(account)}")]`);
    for (const consumer of account.consumers) {
      const c = id("c", consumerCount++);
      const shape =
        consumer.kind === "workspace" ? `{{"${escape(consumer.name)}"}}` : `["${escape(consumer.name)}"]`;
      lines.push(`  ${c}${shape}`);
      const label = consumer.reason
        ? `${consumer.kind}: ${consumer.action}, ${consumer.reason}`
        : `${consumer.kind}: ${consumer.action}`;
      const arrow = consumer.action === "skipped" ? "-.->" : "-->";
      lines.push(`  ${node} ${arrow}|"${escape(label)}"| ${c}`);
    }
  });
  return lines.join("\n");
}

function describeAccount(account: AccountReport): string {
  const before = account.activeKeyBefore ? `active ${account.activeKeyBefore.key}` : "";
  return [account.outcome, before].filter((s) => s !== "").join(", ");
}

function escape(text: string): string {
  return text.replace(/"/g, "#quot;").replace(/[<>]/g, "");
}
