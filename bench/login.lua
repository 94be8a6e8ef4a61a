-- wrk: POST /login with HTTP Basic credentials (BASIC = base64 of "name:password").
wrk.method = "POST"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")

done = function(summary, latency, requests)
  io.write(string.format("summary: requests=%d non2xx=%d errors.connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
