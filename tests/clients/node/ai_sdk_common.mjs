// What ai_sdk.mjs (Responses) and ai_sdk_chat.mjs (Chat Completions) share: the provider with a
// recording fetch (every request body the SDK sent goes into the printed document), the weather
// tool, the step summary, reading a stream, and printing one JSON document (or failing with the
// SDK's error).
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText, tool } from "ai";
import { z } from "zod";

export const mode = process.argv[2];
export const modelId = process.env.SHIM_MODEL;

const requests = [];
async function recordingFetch(url, init) {
  requests.push({ url: String(url), body: init?.body ? JSON.parse(init.body) : null });
  return fetch(url, init);
}

export const openai = createOpenAI({ baseURL: process.env.SHIM_BASE_URL, apiKey: "sk-test", fetch: recordingFetch });

export const weather = tool({
  description: "The weather for a city.",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny and 21 C in ${city}`,
});

export function stepsOf(steps) {
  return steps.map((s) => ({
    finishReason: s.finishReason,
    text: s.text,
    toolCalls: s.toolCalls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
    toolResults: s.toolResults.map((r) => ({ toolCallId: r.toolCallId, output: r.output })),
    responseId: s.response?.id,
    usage: s.usage,
  }));
}

// The stream's part types and text deltas; an error part throws.
export async function drain(r) {
  const deltas = [];
  const parts = [];
  for await (const part of r.fullStream) {
    parts.push(part.type);
    if (part.type === "error") throw part.error;
    if (part.type === "text-delta") deltas.push(part.text);
  }
  return { deltas, parts };
}

// The modes both scripts have: "text" (one answer) and "stream" (its deltas and part types).
export async function plainText(common) {
  if (mode === "text") {
    const r = await generateText({ ...common, system: "Answer briefly.", prompt: "What is the capital of France?" });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage, responseId: r.response.id, warnings: r.warnings };
  }
  const r = streamText({ ...common, prompt: "Name a colour.", onError: ({ error }) => { throw error; } });
  const { deltas, parts } = await drain(r);
  return { deltas, parts, text: await r.text, finishReason: await r.finishReason, usage: await r.usage };
}

// Run `main`, print its result with the recorded requests; any error exits non-zero with its message.
export function run(main) {
  main().then(
    (result) => process.stdout.write(JSON.stringify({ ...result, requests })),
    (error) => {
      process.stderr.write(`${error?.stack || error}\n${JSON.stringify(error?.responseBody ?? "")}\n`);
      process.exit(1);
    },
  );
}
