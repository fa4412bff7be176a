"""What 'charrnn sample' does around the sampler: the prime (given, read from a file,
or the checkpoint's start context), the stop string, the kernels compiled before the
first character, and the samples written as they are made."""
from charrnn import limits


def start(ck, log, length=500, temperature=1.0, argmax=False, top_k=0, top_p=1.0, beam=0,
          stop_at=None, prime=None, prime_file=None, seed=None, num_samples=1, encoding="utf-8"):
    """(chunks, echoed prime, Stop or None) of a sampling run of the checkpoint ck, its
    kernels compiled (saying so through log): chunks yields (chars, num_samples) id
    arrays as they are made; with beam, one array of the best continuation."""
    from charrnn.data import encode, read_text
    from charrnn.sample import Sampler, Stop, start_text
    from charrnn.session import compile_notice
    limits.check_sample(ck.config, length, num_samples, beam)
    if prime_file is not None:
        prime = read_text([prime_file], encoding)
    echo = bool(prime)
    if not prime:
        prime = start_text(ck.meta.get("start_context"), ck.vocab)
    ids = encode(prime, ck.vocab, "the prime")
    if stop_at is not None:
        encode(stop_at, ck.vocab, "--stop-at")  # a character the model never makes never matches
    stop = Stop(stop_at, num_samples) if stop_at is not None else None
    sampler = Sampler(ck.config, ck.params, ck.vocab)
    with compile_notice(log):  # a one-character run with these options compiles (or loads) the kernels
        sampler.beam(ids[-1:], 1, 2) if beam else \
            list(sampler.generate(ids[-1:], 1, num_samples, temperature, top_k, argmax, 0, top_p=top_p))
    if beam:
        chunks = [sampler.beam(ids, length, beam)[0][:, None]]
    else:
        chunks = sampler.generate(ids, length, num_samples, temperature, top_k, argmax, seed,
                                  top_p=top_p)
    return chunks, prime if echo else "", stop


def write(out, chunks, vocab, num_samples, prime, stop, separator):
    """Writes to the binary stream out sample 0 as its chunks arrive; the other samples
    follow at the end, each after the separator and the prime."""
    rest = [[] for _ in range(num_samples - 1)]
    out.write(prime.encode("utf-8"))
    for chunk in chunks:
        texts = ["".join(vocab[i] for i in chunk[:, n]) for n in range(num_samples)]
        if stop:
            texts = [stop.cut(n, t) for n, t in enumerate(texts)]
        out.write(texts[0].encode("utf-8"))
        out.flush()
        for r, t in zip(rest, texts[1:]):
            r.append(t)
        if stop and stop.done:
            break
    if stop:
        out.write(stop.flush(0).encode("utf-8"))
        for n, r in enumerate(rest, start=1):
            r.append(stop.flush(n))
    for r in rest:
        out.write((separator + prime + "".join(r)).encode("utf-8"))
    out.write(b"\n")
    out.flush()
