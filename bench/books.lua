-- wrk: GET /books with the tutorial's token header (TOKEN from the environment).
wrk.method = "GET"
wrk.headers["x-access-tokens"] = os.getenv("TOKEN")

done = function(summary, latency, requests)
  io.write(string.format("summary: requests=%d non2xx=%d errors.connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
