// Token strings and prompt texts of the V4 chat format (spec §6.1, §6.2). The
// long texts are data the format requires, reproduced byte for byte.

export const BOS = '<｜begin▁of▁sentence｜>';
export const EOS = '<｜end▁of▁sentence｜>';
export const THINK_START = '<think>';
export const THINK_END = '</think>';
export const DSML = '｜DSML｜';
export const USER = '<｜User｜>';
export const ASSISTANT = '<｜Assistant｜>';
export const LATEST_REMINDER = '<｜latest_reminder｜>';
export const FIM_HOLE = '<｜fim▁hole｜>';
export const FIM_BEGIN = '<｜fim▁begin｜>';
export const FIM_END = '<｜fim▁end｜>';

/** Quick-instruction task tokens (§6.2 "tasks"). */
export const TASK_TOKENS: Record<string, string> = {
  action: '<｜action｜>',
  query: '<｜query｜>',
  authority: '<｜authority｜>',
  domain: '<｜domain｜>',
  title: '<｜title｜>',
  read_url: '<｜read_url｜>',
};

// DSML tool-call markup (§6.2 "tool_calls").
export const TOOL_CALLS_BLOCK = 'tool_calls';
export const TOOL_CALLS_OPEN = `<${DSML}${TOOL_CALLS_BLOCK}>`;
export const TOOL_CALLS_CLOSE = `</${DSML}${TOOL_CALLS_BLOCK}>`;
/** What separates content from a tool-call block in a completion. */
export const TOOL_CALLS_START = `\n\n<${DSML}${TOOL_CALLS_BLOCK}`;
export const INVOKE_OPEN = `<${DSML}invoke`;
export const INVOKE_CLOSE = `</${DSML}invoke`;
export const PARAM_OPEN = `<${DSML}parameter`;
export const PARAM_CLOSE = `/${DSML}parameter`;

export const REASONING_EFFORT_MAX =
  'Reasoning Effort: Absolute maximum with no shortcuts permitted.\n' +
  'You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n' +
  'Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n';

export const RESPONSE_FORMAT_HEADER = '## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n';

/** The tools block, with the tool schema lines (one json.dumps per line) inserted. */
export function toolsBlock(schemaLines: string): string {
  const d = DSML;
  return `## Tools

You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "<${d}tool_calls>" block like the following:

<${d}tool_calls>
<${d}invoke name="$TOOL_NAME">
<${d}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</${d}parameter>
...
</${d}invoke>
<${d}invoke name="$TOOL_NAME2">
...
</${d}invoke>
</${d}tool_calls>

String parameters should be specified as is and set \`string="true"\`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set \`string="false"\`.

If thinking_mode is enabled (triggered by ${THINK_START}), you MUST output your complete reasoning inside ${THINK_START}...${THINK_END} BEFORE any tool calls or final response.

Otherwise, output directly after ${THINK_END} with tool calls or final response.

### Available Tool Schemas

${schemaLines}

You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.
`;
}
