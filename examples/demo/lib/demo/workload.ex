defmodule Demo.Workload do
  @moduledoc "Drives the demo: counter increments, bank deposits from a task pool, a crashing worker."

  def run do
    for _ <- 1..10, do: Demo.Counter.increment()

    Demo.TaskPool
    |> Task.Supervisor.async_stream(1..4, fn teller ->
      for n <- 1..5, do: Demo.Bank.deposit("account-#{rem(n, 2)}", teller * n)
      Demo.Bank.balance("account-0")
    end)
    |> Enum.to_list()

    for job <- 1..4 do
      Demo.Flaky.work(job)
      Process.sleep(20)
    end

    Process.sleep(50)
    IO.puts("counter=#{Demo.Counter.value()} balance=#{Demo.Bank.balance("account-1")}")
  end
end
