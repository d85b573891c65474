// The Vercel AI SDK (ai@6, @ai-sdk/openai@3) against the shim: `openai.chat(model)` speaks
// Chat Completions (the shim's responses route translates it).
// Usage: node ai_sdk_chat.mjs text|stream|tool|stream-tool   (env SHIM_BASE_URL=.../v1, SHIM_MODEL,
// SHIM_MAX_OUTPUT_TOKENS: a limit for text modes, none if unset)
// Prints one JSON document: what the SDK returned, plus the request bodies it sent (a recording
// fetch). Any SDK error (the SDK validates every chunk with zod) exits non-zero with its message.
import { generateText, stepCountIs, streamText } from "ai";
import { drain, mode, modelId, openai, plainText, run, stepsOf, weather } from "./ai_sdk_common.mjs";

const limit = process.env.SHIM_MAX_OUTPUT_TOKENS;
const maxOutputTokens = limit ? Number(limit) : undefined;

const model = openai.chat(modelId);

async function main() {
  const common = { model, temperature: 0, maxOutputTokens };
  const toolRun = { ...common, prompt: "What is the weather in Paris?", tools: { get_weather: weather }, stopWhen: stepCountIs(3) };
  if (mode === "text" || mode === "stream") return plainText(common);
  if (mode === "tool") {
    const r = await generateText(toolRun);
    return { text: r.text, finishReason: r.finishReason, steps: stepsOf(r.steps) };
  }
  if (mode === "stream-tool") {
    const r = streamText({ ...toolRun, onError: ({ error }) => { throw error; } });
    const { deltas, parts } = await drain(r);
    return { deltas, parts, text: await r.text, finishReason: await r.finishReason, steps: stepsOf(await r.steps) };
  }
  throw new Error(`unknown mode ${mode}`);
}

run(main);
