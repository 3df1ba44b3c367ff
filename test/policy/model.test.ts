import { describe, expect, it } from 'vitest';
import { modelOf } from '../../src/policy/model.js';

const JSON_TYPE = 'application/json';
const json = (text: string): ReturnType<typeof modelOf> => modelOf(Buffer.from(text, 'utf8'), JSON_TYPE);

describe('the model of a JSON body', () => {
  it('is the top-level "model" string', () => {
    expect(json('{"model":"phi-4","messages":[{"role":"user","content":"hi"}]}')).toEqual({ kind: 'model', model: 'phi-4' });
    expect(modelOf(Buffer.from('{"model":"x"}'), 'Application/JSON; charset=utf-8')).toEqual({ kind: 'model', model: 'x' });
    expect(json('{"model":"ph\\u0069-4"}')).toEqual({ kind: 'model', model: 'phi-4' });
  });

  it('refuses a duplicate, missing, nested or non-string model', () => {
    expect(json('{"model":"phi-4","model":"llama-70b"}')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('duplicate member') });
    expect(json('{"messages":[]}')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('no "model"') });
    expect(json('{"options":{"model":"phi-4"}}')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('no "model"') });
    expect(json('{"model":["phi-4"]}')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('non-empty string') });
    expect(json('{"model":null}')).toMatchObject({ kind: 'invalid' });
    expect(json('{"model":""}')).toMatchObject({ kind: 'invalid' });
    expect(json('[{"model":"phi-4"}]')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('an object') });
  });

  it('refuses non-JSON, a byte order mark, invalid UTF-8, trailing data', () => {
    expect(json('model=phi-4')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('not valid JSON') });
    expect(modelOf(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"x"}')]), JSON_TYPE)).toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('byte order mark'),
    });
    expect(modelOf(Buffer.from([0x7b, 0x22, 0x6d, 0xff, 0x22, 0x3a, 0x31, 0x7d]), JSON_TYPE)).toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('UTF-8'),
    });
    expect(json('{"model":"x"} {"model":"y"}')).toMatchObject({ kind: 'invalid' });
    expect(json('')).toMatchObject({ kind: 'invalid' });
  });

  it('refuses a body that is neither JSON nor multipart', () => {
    expect(modelOf(Buffer.from('{"model":"x"}'), 'text/plain')).toMatchObject({ kind: 'invalid', message: expect.stringContaining('text/plain') });
    expect(modelOf(Buffer.from('{"model":"x"}'), undefined)).toMatchObject({ kind: 'invalid', message: expect.stringContaining('no Content-Type') });
  });
});

const B = '----formBoundary7MA4YWxk';
function multipart(parts: readonly { name: string; value: string; filename?: string }[], boundary = B): Buffer {
  let text = '';
  for (const p of parts) {
    text += `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n`;
    if (p.filename) text += 'Content-Type: audio/wav\r\n';
    text += `\r\n${p.value}\r\n`;
  }
  return Buffer.from(`${text}--${boundary}--\r\n`, 'latin1');
}

describe('the model of a multipart/form-data body', () => {
  const type = `multipart/form-data; boundary=${B}`;

  it('is the "model" field, wherever it is among the parts', () => {
    const body = multipart([
      { name: 'file', filename: 'a.wav', value: 'RIFF\u0000\u0001binary--not-a-boundary' },
      { name: 'model', value: 'whisper-small' },
      { name: 'language', value: 'en' },
    ]);
    expect(modelOf(body, type)).toEqual({ kind: 'model', model: 'whisper-small' });
    expect(modelOf(multipart([{ name: 'model', value: 'w' }], 'quoted b'), 'multipart/form-data; boundary="quoted b"')).toEqual({
      kind: 'model',
      model: 'w',
    });
  });

  it('refuses two model fields, none, a missing boundary or a body cut short', () => {
    expect(
      modelOf(
        multipart([
          { name: 'model', value: 'a' },
          { name: 'model', value: 'b' },
        ]),
        type,
      ),
    ).toMatchObject({ kind: 'invalid', message: expect.stringContaining('more than one') });
    expect(modelOf(multipart([{ name: 'file', value: 'x', filename: 'a.wav' }]), type)).toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('no "model"'),
    });
    expect(modelOf(multipart([{ name: 'model', value: 'a' }]), 'multipart/form-data')).toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('boundary'),
    });
    const whole = multipart([{ name: 'model', value: 'a' }]);
    expect(modelOf(whole.subarray(0, whole.length - 12), type)).toMatchObject({ kind: 'invalid' });
    expect(modelOf(Buffer.from(`--${B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--${B}--`), type)).toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('Content-Disposition'),
    });
  });
});
